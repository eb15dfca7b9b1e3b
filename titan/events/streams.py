"""JetStream streams and durable consumers of nats.md §8, as data, and an idempotent ensure.

Get-or-create at start; an existing stream or consumer whose config differs is reported (logged
and returned) and changed only with ``manage=True`` (``nats.manage_streams``), as §8 says.
Scale-out by partition: :func:`execution_consumer` with an account (and/or venue) gives a durable
whose filter covers only that partition's place subjects (``…place.v1.{venue}.{account}.*``); the
work-queue stream rejects overlapping filters, so partitioned instances must not also create the
catch-all ``EXECUTION_CORE``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from titan.events import subjects

log = logging.getLogger(__name__)

HOUR = 3600.0
DAY = 24 * HOUR
GIB = 1024**3

ACK_WAIT_S = 30.0
MAX_DELIVER = 5
MAX_ACK_PENDING = 1000


@dataclass(frozen=True, slots=True)
class StreamSpec:
    config: StreamConfig
    checked: tuple[str, ...]  # fields compared against an existing stream


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec(
        StreamConfig(
            name="TITAN_EXECUTION",
            subjects=["titan.execution.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=DAY,
            max_bytes=GIB,
        ),
        ("subjects", "retention", "storage", "max_age", "max_bytes"),
    ),
    StreamSpec(
        StreamConfig(
            name="TITAN_CMD",
            subjects=[subjects.CMD_ALL],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            max_age=7 * DAY,
            duplicate_window=60.0,
        ),
        ("subjects", "retention", "storage", "max_age", "duplicate_window"),
    ),
    StreamSpec(
        StreamConfig(
            name="TITAN_EVT",
            subjects=["titan.evt.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=30 * DAY,
            max_bytes=10 * GIB,
            duplicate_window=600.0,  # ours when creating; an existing default (2 min) is accepted
        ),
        ("subjects", "retention", "storage", "max_age", "max_bytes"),
    ),
)

CMD_STREAM = "TITAN_CMD"


def _consumer(durable: str, filters: list[str]) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_S,
        max_deliver=MAX_DELIVER,
        max_ack_pending=MAX_ACK_PENDING,
        filter_subject=filters[0] if len(filters) == 1 else None,
        filter_subjects=filters if len(filters) > 1 else None,
    )


def execution_consumer(account: str | None = None, venue: str | None = None) -> ConsumerConfig:
    """``EXECUTION_CORE`` (all place intents) or a partition's durable (scale-out by account/venue)."""
    if account is None and venue is None:
        return _consumer("EXECUTION_CORE", [subjects.CMD_EXECUTION_FILTER])
    suffix = "_".join(part.upper() for part in (venue or "ALL", account or "ALL"))
    return _consumer(f"EXECUTION_CORE_{suffix}", [subjects.place_intent_filter(account=account, venue=venue)])


RISK_ENFORCER = _consumer("RISK_ENFORCER", [subjects.CMD_RISK_FILTER])
OPERATOR_CONTROL = _consumer("OPERATOR_CONTROL", [subjects.CMD_OPERATOR_FILTER, subjects.CMD_SYS_FILTER])


def consumers(account: str | None = None, venue: str | None = None) -> tuple[ConsumerConfig, ...]:
    """The durable pull consumers on ``TITAN_CMD`` for this instance."""
    return (execution_consumer(account, venue), RISK_ENFORCER, OPERATOR_CONTROL)


_CONSUMER_FIELDS = (
    "ack_policy",
    "ack_wait",
    "max_deliver",
    "max_ack_pending",
    "filter_subject",
    "filter_subjects",
)


def _norm(value: Any) -> Any:
    if isinstance(value, list):
        return sorted(value)
    if hasattr(value, "value"):  # enums compare by their wire value
        return value.value
    return value


def _differences(kind: str, name: str, want: Any, have: Any, fields: tuple[str, ...]) -> list[str]:
    out = []
    for field in fields:
        wanted, actual = _norm(getattr(want, field)), _norm(getattr(have, field))
        if field in ("max_bytes",) and wanted is None and actual in (None, -1):
            continue
        if wanted != actual:
            out.append(f"{kind} {name}: {field} is {actual!r}, expected {wanted!r}")
    return out


async def ensure_streams(
    js: Any, manage: bool = False, account: str | None = None, venue: str | None = None
) -> list[str]:
    """Get-or-create every stream and consumer; return (and log) the differences found.

    ``js`` is a nats-py ``JetStreamContext`` (or its manager). With ``manage=True`` differing
    configs are updated; otherwise they are left alone (upstream behaviour) and reported.
    """
    report: list[str] = []
    for spec in STREAMS:
        name = spec.config.name
        assert name is not None
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(config=spec.config)
            log.info("created stream %s", name)
            continue
        diffs = _differences("stream", name, spec.config, info.config, spec.checked)
        if diffs and manage:
            await js.update_stream(config=spec.config)
            diffs = [d + " (updated)" for d in diffs]
        report.extend(diffs)
    for config in consumers(account, venue):
        durable = config.durable_name
        assert durable is not None
        try:
            info = await js.consumer_info(CMD_STREAM, durable)
        except NotFoundError:
            await js.add_consumer(CMD_STREAM, config=config)
            log.info("created consumer %s on %s", durable, CMD_STREAM)
            continue
        diffs = _differences("consumer", durable, config, info.config, _CONSUMER_FIELDS)
        if diffs and manage:
            await js.add_consumer(CMD_STREAM, config=config)  # create-or-update on nats-server >= 2.10
            diffs = [d + " (updated)" for d in diffs]
        report.extend(diffs)
    for line in report:
        log.warning("%s", line)
    return report
