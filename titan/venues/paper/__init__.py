"""The paper venue: fills against the ticker table of a price-source venue (venues.md §7)."""
