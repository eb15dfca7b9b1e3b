"""Shared gateway logic: order tracking, shared-memory buckets, the asyncio driver base and service."""
