"""Outcome of one venue call, classified per venues.md §6; never collapsed into a generic reject."""

from __future__ import annotations

import email.utils
from enum import StrEnum

import msgspec


class OutcomeKind(StrEnum):
    ACK = "ACK"  # the venue accepted the request
    REJECTED = "REJECTED"  # definitive: the order does not exist (see error_class for why)
    UNKNOWN = "UNKNOWN"  # sent, result unknown: query by client id, never resend
    RATE_LIMITED = "RATE_LIMITED"  # not placed; venue cooldown until ``until_ms``
    AUTH_ERROR = "AUTH_ERROR"  # not placed; venue disabled, alarm
    CLOCK_ERROR = "CLOCK_ERROR"  # not placed; resync the offset, no automatic resend
    NOT_FOUND = "NOT_FOUND"  # query/cancel: the venue does not know this order (probe rule)
    DUPLICATE_CLIENT_ID = "DUPLICATE_CLIENT_ID"  # may exist: query by client id
    FAILED = "FAILED"  # nothing left the process (connection refused before sending)


class ErrorClass(StrEnum):
    """Why a call did not simply succeed (venues.md §6 'class' column, plus two of ours)."""

    RATE_LIMITED = "RATE_LIMITED"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    CLOCK_ERROR = "CLOCK_ERROR"
    DUPLICATE_CLIENT_ID = "DUPLICATE_CLIENT_ID"
    UNKNOWN = "UNKNOWN"
    AUTH_ERROR = "AUTH_ERROR"
    INVALID_REQUEST = "INVALID_REQUEST"
    NOT_FOUND = "NOT_FOUND"
    # Ours: a definitive "not processed" answer (Binance 503 "Service Unavailable.").
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    # Ours: a venue error code none of the tables lists; the venue answered, so it is definitive.
    OTHER = "OTHER"


_KIND_OF_CLASS: dict[ErrorClass, OutcomeKind] = {
    ErrorClass.RATE_LIMITED: OutcomeKind.RATE_LIMITED,
    ErrorClass.INSUFFICIENT_BALANCE: OutcomeKind.REJECTED,
    ErrorClass.CLOCK_ERROR: OutcomeKind.CLOCK_ERROR,
    ErrorClass.DUPLICATE_CLIENT_ID: OutcomeKind.DUPLICATE_CLIENT_ID,
    ErrorClass.UNKNOWN: OutcomeKind.UNKNOWN,
    ErrorClass.AUTH_ERROR: OutcomeKind.AUTH_ERROR,
    ErrorClass.INVALID_REQUEST: OutcomeKind.REJECTED,
    ErrorClass.NOT_FOUND: OutcomeKind.NOT_FOUND,
    ErrorClass.SERVICE_UNAVAILABLE: OutcomeKind.REJECTED,
    ErrorClass.OTHER: OutcomeKind.REJECTED,
}


class Outcome(msgspec.Struct, frozen=True):
    kind: OutcomeKind
    error_class: ErrorClass | None = None
    code: str = ""  # the venue's error code as text ("110072", "-4116", "HTTP503")
    message: str = ""
    http_status: int = 0
    until_ms: int | None = None  # RATE_LIMITED: cooldown end when the venue said so
    ip_ban: bool = False  # RATE_LIMITED: cancels stop too (HTTP 418, Bybit 403)
    venue_order_id: str = ""  # ACK: the venue's id when the response carried one

    @property
    def may_exist(self) -> bool:
        """The order may be live at the venue: resolve by querying its client id, never resend."""
        return self.kind in (OutcomeKind.UNKNOWN, OutcomeKind.DUPLICATE_CLIENT_ID)

    @property
    def not_placed(self) -> bool:
        """Definitively not placed (order leg becomes REJECTED / FAILED)."""
        return self.kind in (
            OutcomeKind.REJECTED,
            OutcomeKind.RATE_LIMITED,
            OutcomeKind.AUTH_ERROR,
            OutcomeKind.CLOCK_ERROR,
            OutcomeKind.FAILED,
        )


def ack(venue_order_id: str = "", http_status: int = 200) -> Outcome:
    return Outcome(OutcomeKind.ACK, venue_order_id=venue_order_id, http_status=http_status)


def error(
    error_class: ErrorClass,
    code: str,
    message: str = "",
    http_status: int = 0,
    until_ms: int | None = None,
    ip_ban: bool = False,
) -> Outcome:
    """An outcome for a classified error; the kind follows from the class."""
    return Outcome(
        _KIND_OF_CLASS[error_class],
        error_class=error_class,
        code=code,
        message=message,
        http_status=http_status,
        until_ms=until_ms,
        ip_ban=ip_ban,
    )


def transport_failure(sent: bool, message: str = "") -> Outcome:
    """Timeout / reset / disconnect: UNKNOWN once any byte may have reached the venue, else FAILED."""
    if sent:
        return Outcome(OutcomeKind.UNKNOWN, error_class=ErrorClass.UNKNOWN, code="TRANSPORT", message=message)
    return Outcome(OutcomeKind.FAILED, code="NOT_SENT", message=message)


def retry_after_until_ms(value: str | None, now_ms: int) -> int | None:
    """Absolute end of a ``Retry-After`` header (delta seconds or HTTP date), or None if absent/bad."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return now_ms + int(text) * 1000
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(now_ms, int(moment.timestamp() * 1000))
