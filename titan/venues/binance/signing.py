"""Binance USD-M request signing (venues.md §3.2)."""

from __future__ import annotations

from titan.venues.common.hmac_hex import hmac_sha256_hex


def sign(secret: str, total_params: str) -> str:
    """Hex HMAC-SHA256 over totalParams = query string + body, exactly the bytes sent (no ``&`` between)."""
    return hmac_sha256_hex(secret, total_params)
