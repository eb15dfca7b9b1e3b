"""Routing logic of ``core``: weighted multi-venue splitting and client order ids."""
