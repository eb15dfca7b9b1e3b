"""Binance USD-M futures adapter, sans-I/O (venues.md §3)."""
