"""Shared fixtures for the sans-I/O ingress tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from titan.ingress.protocol import RequestProcessor
from titan.ingress.replay import ReplayGuard
from titan.ingress.session import Session
from titan.ingress.signing import secret_key

SECRET = "test-secret"
KEY = secret_key(SECRET)
NOW_MS = 1_795_917_803_500.0
MAX_FRAME = 1024


class FakeClock:
    def __init__(self, now_ms: float = NOW_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> float:
        return self.now_ms


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_session(clock: FakeClock) -> Callable[..., Session]:
    def make(
        *, window_ms: float = 5000, capacity: int = 1000, start_ms: float = 0.0, key: bytes = KEY
    ) -> Session:
        guard = ReplayGuard(window_ms=window_ms, capacity=capacity, start_ms=start_ms)
        return Session(RequestProcessor(key, guard, clock), MAX_FRAME)

    return make


@pytest.fixture
def session(make_session: Callable[..., Session]) -> Session:
    return make_session()


def prepare_signal(signal_id: str = "sig-1", ts: float = NOW_MS, **overrides: Any) -> dict[str, Any]:
    sig: dict[str, Any] = {
        "signal_id": signal_id,
        "source": "scavenger",
        "symbol": "BTCUSDT",
        "direction": "LONG",
        "entry_zone": {"min": 50000, "max": 50100},
        "stop_loss": 49000,
        "take_profits": [51000],
        "confidence": 95,
        "leverage": 20,
        "timestamp": int(ts),
        "signal_type": "PREPARE",
    }
    sig.update(overrides)
    return {k: v for k, v in sig.items() if v is not None}
