"""Request-reply of nats.md §11, answered by the bridge from what ``core`` publishes.

``core`` is the only owner of trading state and never serves NATS itself; the bridge watches the
publications it forwards (the truth snapshot §9.5 for the policy hash and positions, the balance
event §9.7 for balances) and answers from the latest ones. Pure logic: :class:`EngineView` is fed
publications and builds reply bodies; the bridge does the I/O.
"""

from __future__ import annotations

from typing import Any

import msgspec

from titan.events import subjects
from titan.events.payloads import Publication

_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()


def _config_error(venue: str) -> str:
    return f"Configuration error: Exchange '{venue}' not found"


class EngineView:
    """The latest truth snapshot and balance seen on the way out, for §11 replies."""

    def __init__(self, venues: list[str]) -> None:
        self.venues = [v.lower() for v in venues]
        self.policy_hash: str | None = None
        self.truth_ts: int | None = None
        self.venue_positions: list[dict[str, Any]] = []
        self.balance: dict[str, Any] | None = None

    def observe(self, publication: Publication) -> None:
        """Remember what a publication says about the engine (cheap for every other subject)."""
        subject = publication.subject
        if subject != subjects.EVT_TRUTH and subject != subjects.EVT_BALANCE:
            return
        try:
            body = _DECODER.decode(publication.data)
        except msgspec.DecodeError:
            return
        if not isinstance(body, dict):
            return
        if subject == subjects.EVT_TRUTH:
            policy_hash = body.get("policy_hash")
            if isinstance(policy_hash, str):
                self.policy_hash = policy_hash
            ts = body.get("timestamp")
            self.truth_ts = ts if isinstance(ts, int) else self.truth_ts
            positions = body.get("venue_positions")
            if isinstance(positions, list):
                self.venue_positions = [p for p in positions if isinstance(p, dict)]
        else:
            self.balance = body

    # --- replies ----------------------------------------------------------------------------------

    def policy_hash_reply(self, now_ms: int) -> dict[str, Any]:
        """``titan.req.exec.policy_hash.v1``: ``{policy_hash, timestamp}`` (null before the first truth)."""
        return {"policy_hash": self.policy_hash, "timestamp": now_ms}

    def balances_reply(self) -> dict[str, Any]:
        """``titan.rpc.execution.get_balances.v1.>`` from the shadow state's last balance event."""
        b = self.balance
        if b is None:
            return {"balances": []}
        return {
            "balances": [
                {
                    "currency": b.get("asset", "USDT"),
                    "available": b.get("free"),
                    "locked": b.get("locked"),
                    "total": b.get("total"),
                    "updateTime": b.get("ts"),
                }
            ]
        }

    def positions_reply(self, subject: str) -> dict[str, Any]:
        """``titan.rpc.execution.get_positions.v1.{venue}``: that venue's positions, or an error."""
        try:
            venue = subjects.parse_get_positions_subject(subject)
        except subjects.SubjectError as exc:
            return {"positions": [], "error": str(exc)}
        if venue not in self.venues:
            return {"positions": [], "error": _config_error(venue)}
        if self.truth_ts is None:
            return {"positions": [], "error": "no position snapshot from the engine yet"}
        exchange = venue.upper()
        return {"positions": [p for p in self.venue_positions if p.get("exchange") == exchange]}

    def reply(self, subject: str, now_ms: int) -> bytes | None:
        """The encoded reply to a §11 request subject, None when it is not one."""
        if subject == subjects.REQ_POLICY_HASH:
            return _ENCODER.encode(self.policy_hash_reply(now_ms))
        if subject.startswith(subjects.RPC_GET_POSITIONS_PREFIX + "."):
            return _ENCODER.encode(self.positions_reply(subject))
        if subject.startswith("titan.rpc.execution.get_balances.v1."):
            return _ENCODER.encode(self.balances_reply())
        return None
