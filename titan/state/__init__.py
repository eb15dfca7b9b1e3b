"""Trading state of ``core``: leg state machine, shadow positions, journal and replay."""
