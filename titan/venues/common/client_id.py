"""Client order id limits per venue (venues.md §5, risk-and-state.md §12)."""

from __future__ import annotations

import re

import msgspec


class ClientIdRule(msgspec.Struct, frozen=True):
    max_len: int
    pattern: str  # full-match regex for one id

    def accepts(self, client_order_id: str) -> bool:
        return (
            0 < len(client_order_id) <= self.max_len
            and re.fullmatch(self.pattern, client_order_id) is not None
        )


CLIENT_ID_RULES: dict[str, ClientIdRule] = {
    "bybit": ClientIdRule(36, r"[0-9A-Za-z_-]+"),
    "binance": ClientIdRule(36, r"[.A-Z:/a-z0-9_-]+"),
    # MEXC documents only the length (> 32 → 2030); alphanumerics are the safe assumption.
    "mexc": ClientIdRule(32, r"[0-9A-Za-z]+"),
}


class ClientIdError(ValueError):
    """A client order id the venue would refuse; building the request fails before anything is sent."""


def check_client_order_id(venue: str, client_order_id: str) -> str:
    rule = CLIENT_ID_RULES[venue]
    if not rule.accepts(client_order_id):
        raise ClientIdError(
            f"client order id {client_order_id!r} breaks {venue} rule: ≤ {rule.max_len} of {rule.pattern}"
        )
    return client_order_id
