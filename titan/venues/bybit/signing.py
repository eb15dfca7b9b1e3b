"""Bybit v5 request and private-stream signing (venues.md §2.2, §2.6)."""

from __future__ import annotations

from titan.venues.common.hmac_hex import hmac_sha256_hex

WS_AUTH_PREFIX = "GET/realtime"


def string_to_sign(timestamp: str, api_key: str, recv_window: str, payload: str) -> str:
    """``timestamp + api_key + recv_window + payload``; payload is the query string (GET) or body (POST)."""
    return f"{timestamp}{api_key}{recv_window}{payload}"


def sign(secret: str, string_to_sign: str) -> str:
    """Lowercase hex HMAC-SHA256 of the string to sign."""
    return hmac_sha256_hex(secret, string_to_sign)


def ws_auth_signature(secret: str, expires_ms: int) -> str:
    """Signature for the private-stream ``auth`` op: hex HMAC over ``"GET/realtime" + expires``."""
    return hmac_sha256_hex(secret, f"{WS_AUTH_PREFIX}{expires_ms}")
