"""Adapters between the bridge's typed values and the ring messages of ``titan/messages.py``."""

from __future__ import annotations

from typing import Any

from titan import messages
from titan.events.intake import HaltState
from titan.events.intents import NatsIntent
from titan.events.operator import OperatorAction, OperatorCommand
from titan.events.payloads import DEFAULT_PRODUCER, EVENT, plain, publications


def to_message_intent(intent: NatsIntent) -> messages.Intent:
    """The ring form of a validated NATS intent (decimals as plain strings)."""
    return messages.Intent(
        signal_id=intent.signal_id,
        source=intent.source or "nats",
        symbol=intent.symbol,
        direction=intent.direction,
        intent_type=intent.type,
        t_signal_ms=intent.t_signal,
        size=plain(intent.size),
        entry_zone=[plain(z) for z in intent.entry_zone],
        stop_loss=plain(intent.stop_loss),
        take_profits=[plain(t) for t in intent.take_profits],
        confidence=intent.confidence,
        leverage=None if intent.leverage is None else float(intent.leverage),  # a ratio, not money
        velocity=intent.velocity,
        exchange=intent.exchange,
        policy_hash=intent.policy_hash,
        ttl_ms=intent.ttl_ms,
        causation_id=intent.causation_id,
        account=intent.account,
        status=intent.status,
        max_slippage_bps=None if intent.max_slippage_bps is None else float(intent.max_slippage_bps),
    )


def to_place_intent(
    intent: NatsIntent,
    ref: int,
    dedupe_ids: tuple[str, ...],
    original: bytes,
    t_ingress_ms: int,
    t_read: int,
    t_ring: int,
) -> messages.PlaceIntent:
    """``PlaceIntent`` for the bridge → core ring after :meth:`IntentIntake.authenticate` forwarded it."""
    return messages.PlaceIntent(
        ref=ref,
        dedupe_ids=list(dedupe_ids),
        correlation_id=intent.correlation_id or intent.signal_id,
        intent=to_message_intent(intent),
        original=original,
        t_ingress_ms=t_ingress_ms,
        t_read=t_read,
        t_ring=t_ring,
    )


_HALT_KIND = {HaltState.HARD_HALT: "HALT", HaltState.SOFT_HALT: "SOFT_HALT", HaltState.OPEN: "RESUME"}


def to_operator_message(command: OperatorCommand, ref: int, t_read: int) -> messages.OperatorCommand | None:
    """Ring form of an authenticated command; None for log-only actions (OVERRIDE_ALLOCATION)."""
    if command.action is OperatorAction.OVERRIDE_ALLOCATION:
        return None
    kind = command.action.value
    if command.action is OperatorAction.HALT:
        kind = _HALT_KIND[command.halt_state or HaltState.HARD_HALT]
    args: dict[str, Any] = {"form": command.form, "reason_signed": command.reason_signed}
    if command.venue is not None:
        args["venue"] = command.venue
    if command.symbol is not None:
        args["symbol"] = command.symbol
    if command.policy is not None:
        args["policy"] = command.policy
    if command.ts is not None:
        args["ts"] = command.ts
    return messages.OperatorCommand(
        ref=ref,
        kind=kind,
        actor=command.actor or "",
        reason=command.reason,
        args=args,
        command_id=command.command_id or "",
        t_read=t_read,
    )


def to_ring_events(
    event: EVENT, producer: str = DEFAULT_PRODUCER, instance: str = ""
) -> list[messages.Event]:
    """What core pushes on its event ring for one event: subject, Nats-Msg-Id and final bytes."""
    return [messages.Event(p.subject, p.msg_id, p.data) for p in publications(event, producer, instance)]
