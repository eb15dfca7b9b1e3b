"""Every NATS subject the bridge subscribes to or publishes on (nats.md §2), builders and parsers.

``{venue}`` is lower case, ``{account}`` defaults to ``main``, ``{symbol}`` is the intent's symbol
with ``/`` replaced by ``_`` (``BTC/USDT`` → ``BTC_USDT``).
"""

from __future__ import annotations

import enum

import msgspec

DEFAULT_ACCOUNT = "main"

# --- subscribed -------------------------------------------------------------------------------
CMD_ALL = "titan.cmd.>"
CMD_EXECUTION_FILTER = "titan.cmd.execution.>"
CMD_EXECUTION_PLACE_PREFIX = "titan.cmd.execution.place.v1"
CMD_RISK_FILTER = "titan.cmd.risk.>"
CMD_RISK_FLATTEN = "titan.cmd.risk.flatten.v1"
CMD_RISK_POLICY = "titan.cmd.risk.policy.v1"
CMD_OPERATOR_FILTER = "titan.cmd.operator.>"
CMD_SYS_FILTER = "titan.cmd.sys.>"
CMD_OPERATOR_ARM = "titan.cmd.operator.arm.v1"
CMD_OPERATOR_DISARM = "titan.cmd.operator.disarm.v1"
CMD_SYS_HALT = "titan.cmd.sys.halt.v1"
EVT_RISK_STATE = "titan.evt.risk.state.v1"
SYS_HEARTBEAT = "titan.sys.heartbeat.v1"
SYS_HEARTBEAT_ANY = "titan.sys.heartbeat.v1.>"
DATA_TICKER_PREFIX = "titan.data.market.ticker.v1"
DATA_TICKER_ALL = "titan.data.market.ticker.v1.>"
RPC_GET_POSITIONS_PREFIX = "titan.rpc.execution.get_positions.v1"
RPC_GET_POSITIONS_ALL = "titan.rpc.execution.get_positions.v1.*"
RPC_GET_BALANCES_ALL = "titan.rpc.execution.get_balances.v1.>"
REQ_POLICY_HASH = "titan.req.exec.policy_hash.v1"

# --- published --------------------------------------------------------------------------------
EVT_FILL_PREFIX = "titan.evt.execution.fill.v1"
EVT_REPORT_PREFIX = "titan.evt.execution.report.v1"
EVT_SHADOW_FILL_PREFIX = "titan.evt.execution.shadow_fill.v1"
EVT_TRADE_COMPLETED = "titan.evt.analysis.trade_completed.v1"
EVT_FUNDING = "titan.evt.execution.funding.v1"
EVT_BALANCE = "titan.evt.execution.balance"
EVT_REJECT = "titan.evt.execution.reject.v1"
EVT_DRIFT = "titan.evt.execution.drift.v1"
EVT_TRUTH = "titan.evt.execution.truth.v1"
EXPOSURE_UPDATE = "exposure.update"
DLQ_SUBJECTS: tuple[str, str] = ("titan.dlq.execution.core", "titan.execution.dlq")

# Envelope ``type`` values of the published envelopes (§2, §9).
TYPE_FILL = "titan.event.execution.fill.v1"
TYPE_REPORT = "titan.event.execution.report.v1"
TYPE_TRADE_CLOSED = "titan.event.execution.trade.closed.v1"
TYPE_FUNDING = "titan.event.execution.funding.v1"


class SubjectError(ValueError):
    """A subject that does not match the expected pattern."""


def subject_token(symbol: str) -> str:
    """Subject token of a symbol: ``/`` → ``_``. Accepts a canonical or raw symbol as given."""
    return symbol.replace("/", "_")


def _check_token(name: str, value: str) -> str:
    if not value or any(c in value for c in " .*>\t\r\n"):
        raise SubjectError(f"invalid {name} token {value!r}")
    return value


_VAS_CACHE: dict[tuple[str, str, str, str], str] = {}
_VAS_CACHE_MAX = 4096


def _venue_account_symbol(prefix: str, venue: str, account: str, symbol: str) -> str:
    key = (prefix, venue, account, symbol)
    subject = _VAS_CACHE.get(key)
    if subject is None:
        subject = _build_vas(prefix, venue, account, symbol)  # raises SubjectError: never cached
        if len(_VAS_CACHE) >= _VAS_CACHE_MAX:
            _VAS_CACHE.clear()
        _VAS_CACHE[key] = subject
    return subject


def _build_vas(prefix: str, venue: str, account: str, symbol: str) -> str:
    return ".".join(
        (
            prefix,
            _check_token("venue", venue.lower()),
            _check_token("account", account or DEFAULT_ACCOUNT),
            _check_token("symbol", subject_token(symbol)),
        )
    )


def place_intent_subject(venue: str, symbol: str, account: str = DEFAULT_ACCOUNT) -> str:
    """``titan.cmd.execution.place.v1.{venue}.{account}.{symbol}``."""
    return _venue_account_symbol(CMD_EXECUTION_PLACE_PREFIX, venue, account, symbol)


def place_intent_filter(account: str | None = None, venue: str | None = None) -> str:
    """Consumer filter for one partition (scale-out by account/venue); ``None`` = any."""
    v = "*" if venue is None else _check_token("venue", venue.lower())
    a = "*" if account is None else _check_token("account", account)
    return f"{CMD_EXECUTION_PLACE_PREFIX}.{v}.{a}.*"


def fill_subject(venue: str, symbol: str, account: str = DEFAULT_ACCOUNT) -> str:
    """``titan.evt.execution.fill.v1.{venue}.{account}.{symbol}``."""
    return _venue_account_symbol(EVT_FILL_PREFIX, venue, account, symbol)


def report_subject(venue: str, symbol: str, account: str = DEFAULT_ACCOUNT) -> str:
    """``titan.evt.execution.report.v1.{venue}.{account}.{symbol}``."""
    return _venue_account_symbol(EVT_REPORT_PREFIX, venue, account, symbol)


def shadow_fill_subject(symbol_as_given: str) -> str:
    """``titan.evt.execution.shadow_fill.v1.{symbol as in the intent}`` (``/`` → ``_``)."""
    subject = _SHADOW_CACHE.get(symbol_as_given)
    if subject is None:
        subject = f"{EVT_SHADOW_FILL_PREFIX}.{_check_token('symbol', subject_token(symbol_as_given))}"
        if len(_SHADOW_CACHE) >= _VAS_CACHE_MAX:
            _SHADOW_CACHE.clear()
        _SHADOW_CACHE[symbol_as_given] = subject
    return subject


_SHADOW_CACHE: dict[str, str] = {}


def ticker_subject(venue: str, symbol: str) -> str:
    """``titan.data.market.ticker.v1.{venue}.{symbol}``."""
    venue_token = _check_token("venue", venue.lower())
    return f"{DATA_TICKER_PREFIX}.{venue_token}.{_check_token('symbol', subject_token(symbol))}"


def get_positions_subject(venue: str) -> str:
    """``titan.rpc.execution.get_positions.v1.{venue}``."""
    return f"{RPC_GET_POSITIONS_PREFIX}.{_check_token('venue', venue.lower())}"


def heartbeat_subject(service: str | None = None) -> str:
    """Exact ``titan.sys.heartbeat.v1`` or Brain's ``titan.sys.heartbeat.v1.{service}``."""
    return SYS_HEARTBEAT if service is None else f"{SYS_HEARTBEAT}.{_check_token('service', service)}"


# --- parsers ----------------------------------------------------------------------------------


class VenueAccountSymbol(msgspec.Struct, frozen=True):
    """Tokens of a ``….{venue}.{account}.{symbol}`` subject. ``symbol`` is the raw subject token."""

    venue: str
    account: str
    symbol: str


def _parse_vas(prefix: str, subject: str) -> VenueAccountSymbol:
    head = prefix + "."
    if not subject.startswith(head):
        raise SubjectError(f"subject {subject!r} does not start with {prefix!r}")
    parts = subject[len(head) :].split(".")
    if len(parts) != 3 or not all(parts):
        raise SubjectError(f"subject {subject!r} is not {prefix}.{{venue}}.{{account}}.{{symbol}}")
    return VenueAccountSymbol(venue=parts[0].lower(), account=parts[1], symbol=parts[2])


def parse_place_intent_subject(subject: str) -> VenueAccountSymbol:
    """Tokens of a place-intent subject (informational only: routing comes from the payload, §8)."""
    return _parse_vas(CMD_EXECUTION_PLACE_PREFIX, subject)


def parse_fill_subject(subject: str) -> VenueAccountSymbol:
    return _parse_vas(EVT_FILL_PREFIX, subject)


def parse_report_subject(subject: str) -> VenueAccountSymbol:
    return _parse_vas(EVT_REPORT_PREFIX, subject)


def parse_ticker_subject(subject: str) -> tuple[str, str]:
    """``(venue, symbol token)`` from tokens ``[5]`` and ``[6]`` (§9.8; upstream used [3]/[4], R25)."""
    tokens = subject.split(".")
    if len(tokens) != 7 or ".".join(tokens[:5]) != DATA_TICKER_PREFIX or not tokens[5] or not tokens[6]:
        raise SubjectError(f"subject {subject!r} is not {DATA_TICKER_PREFIX}.{{venue}}.{{symbol}}")
    return tokens[5].lower(), tokens[6]


def parse_get_positions_subject(subject: str) -> str:
    """The venue (last token) of a get-positions request."""
    if not subject.startswith(RPC_GET_POSITIONS_PREFIX + "."):
        raise SubjectError(f"subject {subject!r} is not {RPC_GET_POSITIONS_PREFIX}.{{venue}}")
    venue = subject.rsplit(".", 1)[1]
    if not venue:
        raise SubjectError(f"subject {subject!r} has no venue")
    return venue.lower()


def is_heartbeat_subject(subject: str) -> bool:
    """Both the exact subject and Brain's per-service form (§10.4, R24)."""
    return subject == SYS_HEARTBEAT or subject.startswith(SYS_HEARTBEAT + ".")


class CommandKind(enum.Enum):
    """What a ``titan.cmd.>`` subject carries; the bridge dispatches on it."""

    PLACE_INTENT = "place_intent"
    RISK_COMMAND = "risk_command"
    FLATTEN = "flatten"
    POLICY = "policy"
    ARM = "arm"
    DISARM = "disarm"
    HALT = "halt"
    UNKNOWN = "unknown"


def classify_command_subject(subject: str) -> CommandKind:
    """Dispatch a ``titan.cmd.>`` subject (flatten and policy also arrive on RISK_ENFORCER, §8)."""
    if subject.startswith("titan.cmd.execution."):
        return CommandKind.PLACE_INTENT  # any subject under it is a place intent (§8)
    if subject == CMD_RISK_FLATTEN:
        return CommandKind.FLATTEN
    if subject == CMD_RISK_POLICY:
        return CommandKind.POLICY
    if subject.startswith("titan.cmd.risk."):
        return CommandKind.RISK_COMMAND
    if subject == CMD_OPERATOR_ARM:
        return CommandKind.ARM
    if subject == CMD_OPERATOR_DISARM:
        return CommandKind.DISARM
    if subject == CMD_SYS_HALT:
        return CommandKind.HALT
    return CommandKind.UNKNOWN
