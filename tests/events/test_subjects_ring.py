"""Subjects (nats.md §2) and the adapters to the ring messages."""

from __future__ import annotations

import json

import msgspec
import pytest

from titan import messages
from titan.events import subjects as s
from titan.events.envelope import EnvelopeVerifier
from titan.events.intake import Action, EngineFacts, HaltState, InboundMessage, IntentIntake, decide_in_core
from titan.events.operator import OperatorAction, OperatorCommand
from titan.events.payloads import RejectEvent
from titan.events.ring import to_operator_message, to_place_intent, to_ring_events

from .helpers import NOW_MS, SECRET, envelope_dict, intent_payload


@pytest.mark.parametrize(
    ("built", "expected"),
    [
        (s.place_intent_subject("BYBIT", "BTC/USDT"), "titan.cmd.execution.place.v1.bybit.main.BTC_USDT"),
        (
            s.fill_subject("binance", "ETH/USDT", "acct2"),
            "titan.evt.execution.fill.v1.binance.acct2.ETH_USDT",
        ),
        (s.report_subject("mexc", "SOL/USDT"), "titan.evt.execution.report.v1.mexc.main.SOL_USDT"),
        (s.shadow_fill_subject("BTCUSDT"), "titan.evt.execution.shadow_fill.v1.BTCUSDT"),
        (s.shadow_fill_subject("BTC/USDT"), "titan.evt.execution.shadow_fill.v1.BTC_USDT"),
        (s.ticker_subject("Bybit", "BTC/USDT"), "titan.data.market.ticker.v1.bybit.BTC_USDT"),
        (s.get_positions_subject("PAPER"), "titan.rpc.execution.get_positions.v1.paper"),
        (s.heartbeat_subject(), "titan.sys.heartbeat.v1"),
        (s.heartbeat_subject("brain"), "titan.sys.heartbeat.v1.brain"),
        (s.place_intent_filter(account="acct2"), "titan.cmd.execution.place.v1.*.acct2.*"),
        (s.place_intent_filter(venue="BYBIT"), "titan.cmd.execution.place.v1.bybit.*.*"),
    ],
)
def test_builders(built: str, expected: str) -> None:
    assert built == expected


@pytest.mark.parametrize("bad", ["", "BTC.USDT", "a b", "*", ">"])
def test_builders_reject_bad_tokens(bad: str) -> None:
    with pytest.raises(s.SubjectError):
        s.fill_subject("bybit", bad)


def test_parsers() -> None:
    vas = s.parse_place_intent_subject("titan.cmd.execution.place.v1.BYBIT.main.BTC_USDT")
    assert (vas.venue, vas.account, vas.symbol) == ("bybit", "main", "BTC_USDT")
    assert s.parse_fill_subject(s.fill_subject("bybit", "BTC/USDT")).symbol == "BTC_USDT"
    assert s.parse_report_subject(s.report_subject("mexc", "BTC/USDT", "a")).account == "a"
    assert s.parse_ticker_subject("titan.data.market.ticker.v1.Binance.BTCUSDT") == ("binance", "BTCUSDT")
    assert s.parse_get_positions_subject("titan.rpc.execution.get_positions.v1.bybit") == "bybit"
    for bad in ("titan.cmd.execution.place.v1.bybit.main", "titan.evt.execution.fill.v1.a.b.c"):
        with pytest.raises(s.SubjectError):
            s.parse_place_intent_subject(bad)
    with pytest.raises(s.SubjectError):
        s.parse_ticker_subject("titan.data.market.ticker.v1.bybit")


@pytest.mark.parametrize(
    ("subject", "heartbeat"),
    [
        ("titan.sys.heartbeat.v1", True),
        ("titan.sys.heartbeat.v1.brain", True),
        ("titan.sys.heartbeat.v10", False),
    ],
)
def test_heartbeat_subjects(subject: str, heartbeat: bool) -> None:
    assert s.is_heartbeat_subject(subject) is heartbeat


@pytest.mark.parametrize(
    ("subject", "kind"),
    [
        ("titan.cmd.execution.place.v1.bybit.main.BTC_USDT", s.CommandKind.PLACE_INTENT),
        ("titan.cmd.execution.anything", s.CommandKind.PLACE_INTENT),
        ("titan.cmd.risk.flatten.v1", s.CommandKind.FLATTEN),
        ("titan.cmd.risk.policy.v1", s.CommandKind.POLICY),
        ("titan.cmd.risk.halt", s.CommandKind.RISK_COMMAND),
        ("titan.cmd.operator.arm.v1", s.CommandKind.ARM),
        ("titan.cmd.operator.disarm.v1", s.CommandKind.DISARM),
        ("titan.cmd.sys.halt.v1", s.CommandKind.HALT),
        ("titan.cmd.other", s.CommandKind.UNKNOWN),
    ],
)
def test_classify_command_subject(subject: str, kind: s.CommandKind) -> None:
    assert s.classify_command_subject(subject) is kind


def test_split_layout_bridge_authenticates_core_decides() -> None:
    intake = IntentIntake(EnvelopeVerifier({"default": SECRET}), clock_ms=lambda: NOW_MS)
    data = json.dumps(envelope_dict(intent_payload(size=0.25))).encode()
    msg = InboundMessage(
        "titan.cmd.execution.place.v1.bybit.main.BTC_USDT", data, {"Nats-Msg-Id": "sig-1"}, 9
    )
    forwarded = intake.authenticate(msg)
    assert (
        forwarded.action is Action.FORWARD and forwarded.intent is not None and forwarded.identity == "sig-1"
    )
    place = to_place_intent(forwarded.intent, 1, forwarded.dedupe_ids, data, NOW_MS, 10, 11)
    ring = msgspec.msgpack.decode(msgspec.msgpack.encode(place), type=messages.BRIDGE_TO_CORE)
    assert isinstance(ring, messages.PlaceIntent)
    assert (ring.intent.size, ring.intent.stop_loss, ring.intent.entry_zone) == ("0.25", "49000", ["50000"])
    facts = EngineFacts(armed=True, ready=True, active_policy_hash="h", halt=HaltState.HARD_HALT)
    halted = decide_in_core(forwarded.intent, forwarded.dedupe_ids, "sig-1", facts, data, "9", NOW_MS)
    assert halted.row == "1" and halted.reject is not None
    dup = EngineFacts(armed=True, ready=True, active_policy_hash="h", journaled_ids={"sig-1"})
    assert decide_in_core(forwarded.intent, forwarded.dedupe_ids, "sig-1", dup, data, "9", NOW_MS).row == "0"
    ok = EngineFacts(armed=True, ready=True, active_policy_hash="h")
    assert decide_in_core(forwarded.intent, forwarded.dedupe_ids, "sig-1", ok, data, "9", NOW_MS).row == "10"


@pytest.mark.parametrize(
    ("action", "halt_state", "kind"),
    [
        (OperatorAction.HALT, HaltState.SOFT_HALT, "SOFT_HALT"),
        (OperatorAction.HALT, HaltState.OPEN, "RESUME"),
        (OperatorAction.HALT, HaltState.HARD_HALT, "HALT"),
        (OperatorAction.ARM, None, "ARM"),
        (OperatorAction.POLICY, None, "POLICY"),
    ],
)
def test_operator_to_ring(action: OperatorAction, halt_state: HaltState | None, kind: str) -> None:
    command = OperatorCommand(action=action, subject="x", form="B", halt_state=halt_state, policy={"a": 1})
    ring = to_operator_message(command, ref=3, t_read=4)
    assert ring is not None and ring.kind == kind
    override = OperatorCommand(action=OperatorAction.OVERRIDE_ALLOCATION, subject="x", form="B")
    assert to_operator_message(override, 1, 1) is None


def test_ring_events_are_publications() -> None:
    event = RejectEvent(reason="r", intent_id="i", brain_instance_id="i", timestamp=1, code="C", message="m")
    (ring,) = to_ring_events(event)
    assert (ring.subject, ring.msg_id) == ("titan.evt.execution.reject.v1", "reject:i:r")
    assert json.loads(ring.data)["reason"] == "r"
