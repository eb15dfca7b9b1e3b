"""Bybit v5 linear (USDT perpetuals) adapter, sans-I/O (venues.md §2)."""
