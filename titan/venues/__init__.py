"""Venue adapters: sans-I/O signing, request building, parsing and classification per venue."""
