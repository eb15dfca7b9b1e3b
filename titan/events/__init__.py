"""NATS events and commands: the pure logic of the ``bridge`` process (nats.md)."""
