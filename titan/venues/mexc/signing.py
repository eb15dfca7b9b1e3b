"""MEXC contract request and private-stream signing (venues.md §4.3, §4.7)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from titan.venues.common.hmac_hex import hmac_sha256_hex


def _param_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        # Plain text, never exponent notation.
        return format(value, "f")
    return str(value)


def param_string_get(params: Mapping[str, object | None]) -> str:
    """GET/DELETE parameter string: sorted by key, ``k=v`` joined by ``&``, null parameters omitted."""
    return "&".join(f"{k}={_param_text(v)}" for k, v in sorted(params.items()) if v is not None)


def sign(secret: str, api_key: str, request_time: str, param_string: str) -> str:
    """Hex HMAC-SHA256 over ``api_key + request_time + param_string`` (POST: the raw JSON body)."""
    return hmac_sha256_hex(secret, f"{api_key}{request_time}{param_string}")


def ws_login_signature(secret: str, api_key: str, req_time: str) -> str:
    """Signature for the private-stream ``login``: hex HMAC over ``api_key + req_time``."""
    return hmac_sha256_hex(secret, f"{api_key}{req_time}")
