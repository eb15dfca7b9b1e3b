"""Hex HMAC-SHA256, the signature primitive of all three venues."""

from __future__ import annotations

import hashlib
import hmac


def hmac_sha256_hex(secret: str, message: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``message`` (UTF-8) keyed with ``secret`` (UTF-8)."""
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
