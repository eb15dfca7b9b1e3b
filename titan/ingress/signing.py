"""HMAC-SHA256 signatures of FastPath signals (fastpath.md §6, §13.2)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from titan.canonical import canonical_json

SIGNATURE_BYTES: Final = 32
_HEX: Final = frozenset("0123456789abcdefABCDEF")


def secret_key(secret: str) -> bytes:
    """The HMAC key: the secret string as UTF-8, neither trimmed nor decoded."""
    return secret.encode("utf-8")


def sign_bytes(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, hashlib.sha256)


def sign_signal(key: bytes, signal: object) -> str:
    """Lowercase hex signature of the canonical JSON of ``signal`` (what the TypeScript client sends)."""
    return sign_bytes(key, canonical_json(signal)).hex()


def decode_hex_signature(signature: str) -> bytes | None:
    """The 32 bytes of a 64-char hex signature (either case), or None when it is not one."""
    if len(signature) != 2 * SIGNATURE_BYTES or not _HEX.issuperset(signature):
        return None
    return bytes.fromhex(signature)


def verify(key: bytes, message: bytes, signature: bytes) -> bool:
    """Constant-time comparison of the 32-byte HMAC of ``message`` with ``signature``."""
    return hmac.compare_digest(sign_bytes(key, message), signature)
