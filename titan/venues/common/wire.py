"""Wire helpers shared by the adapters: compact JSON bodies, query strings, parse errors."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from urllib.parse import urlencode

import msgspec

from titan.venues.common.decimals import plain

_JSON_ENCODER = msgspec.json.Encoder()


class VenueParseError(ValueError):
    """A venue payload that does not have the documented shape."""


def json_body(payload: object) -> bytes:
    """Compact JSON (no spaces), keys in insertion order: these exact bytes are signed and sent."""
    return _JSON_ENCODER.encode(payload)


def json_number(value: Decimal) -> msgspec.Raw:
    """A JSON number written from plain decimal text (never exponent form, never via float)."""
    return msgspec.Raw(plain(value).encode())


def query_string(params: Iterable[tuple[str, str]]) -> str:
    """``k=v&…`` in the given order, percent-encoded; this exact text is signed and sent."""
    return urlencode(list(params))
