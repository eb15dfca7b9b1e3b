"""Titan Execution: a low-latency order-execution engine for crypto perpetual futures."""

__version__ = "0.1.0"
