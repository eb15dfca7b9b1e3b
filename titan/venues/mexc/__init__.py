"""MEXC contract (futures) adapter, sans-I/O (venues.md §4)."""
