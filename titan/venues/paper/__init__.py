"""The paper venue: fills against the ticker table (venues.md §7)."""
