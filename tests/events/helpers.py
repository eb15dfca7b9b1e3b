"""Builders of signed envelopes and operator commands for the events tests."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from titan.canonical import canonical_json
from titan.events.envelope import sign

SECRET = "test-secret-123"
NOW_MS = 1_700_000_000_000


def intent_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "signal_id": "sig-1",
        "symbol": "BTC/USDT",
        "direction": 1,
        "type": "BUY_SETUP",
        "size": 0.1,
        "status": "PENDING",
        "t_signal": NOW_MS,
        "entry_zone": [50000],
        "stop_loss": 49000,
        "take_profits": [52000],
    }
    for key, value in overrides.items():
        if value is ...:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


def envelope_dict(
    payload: Any,
    *,
    secret: str = SECRET,
    ts: int = NOW_MS,
    nonce: str = "0123456789abcdef0123456789abcdef",
    key_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    env: dict[str, Any] = {
        "id": "01J-env-1",
        "type": "titan.cmd.execution.place.v1",
        "version": 1,
        "schema_version": 1,
        "ts": ts,
        "producer": "titan-brain",
        "correlation_id": "sig-1",
        "idempotency_key": "sig-1",
        "nonce": nonce,
        "sig": sign(secret, ts, nonce, canonical_json(payload)),
        "payload": payload,
    }
    if key_id is not None:
        env["key_id"] = key_id
    env.update(extra)
    return env


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def form_b(
    action: str,
    *,
    secret: str = SECRET,
    ts: int = NOW_MS,
    actor_id: str = "ops-1",
    command_id: str = "cmd-1",
    **extra: Any,
) -> dict[str, Any]:
    message = f"{ts}:{action}:{actor_id}:{command_id}".encode()
    signature = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    body: dict[str, Any] = {
        "action": action,
        "actor_id": actor_id,
        "command_id": command_id,
        "timestamp": ts,
        "signature": signature,
    }
    body.update(extra)
    return body
