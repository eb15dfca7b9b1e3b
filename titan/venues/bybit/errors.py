"""Bybit v5 error classification (venues.md §2.7, §2.8, §6)."""

from __future__ import annotations

import msgspec

from titan.venues.common.outcome import ErrorClass, Outcome, ack, error, retry_after_until_ms
from titan.venues.common.types import HttpResponse

IP_LIMIT_COOLDOWN_MS = 10 * 60 * 1000  # HTTP 403 "access too frequent": wait ≥ 10 min

RET_CODE_CLASS: dict[int, ErrorClass] = {
    # rate limit
    10006: ErrorClass.RATE_LIMITED,
    10429: ErrorClass.RATE_LIMITED,
    10018: ErrorClass.RATE_LIMITED,
    # insufficient balance
    110007: ErrorClass.INSUFFICIENT_BALANCE,
    110004: ErrorClass.INSUFFICIENT_BALANCE,
    110012: ErrorClass.INSUFFICIENT_BALANCE,
    110044: ErrorClass.INSUFFICIENT_BALANCE,
    # invalid timestamp
    10002: ErrorClass.CLOCK_ERROR,
    # duplicate client id: it may exist, query it
    110072: ErrorClass.DUPLICATE_CLIENT_ID,
    # "invalid duplicate request": ambiguous for a create, so the safe reading is "may exist → query"
    10014: ErrorClass.DUPLICATE_CLIENT_ID,
    # execution status unknown: server error / restarting, "order processing, retry later"
    10016: ErrorClass.UNKNOWN,
    110079: ErrorClass.UNKNOWN,
    10019: ErrorClass.UNKNOWN,
    # auth: invalid key, bad signature (10005 permission, 10007 auth failed, 10010 unmatched IP per v5 docs)
    10003: ErrorClass.AUTH_ERROR,
    10004: ErrorClass.AUTH_ERROR,
    10005: ErrorClass.AUTH_ERROR,
    10007: ErrorClass.AUTH_ERROR,
    10010: ErrorClass.AUTH_ERROR,
    # invalid request (a bug on our side)
    10001: ErrorClass.INVALID_REQUEST,
    110017: ErrorClass.INVALID_REQUEST,
    # order does not exist
    110001: ErrorClass.NOT_FOUND,
    170213: ErrorClass.NOT_FOUND,
}

_IP_BAN_CODES = frozenset({10018})


class Envelope(msgspec.Struct, rename="camel"):
    """``{"retCode","retMsg","result","retExtInfo","time"}``."""

    ret_code: int
    ret_msg: str = ""
    result: msgspec.Raw = msgspec.Raw(b"{}")
    time: int = 0


class _CreateResult(msgspec.Struct, rename="camel"):
    order_id: str = ""


def _snippet(response: HttpResponse) -> str:
    return response.body[:200].decode(errors="replace")


def _reset_until_ms(response: HttpResponse) -> int | None:
    value = response.header("X-Bapi-Limit-Reset-Timestamp")
    if value is not None and value.strip().isdigit():
        return int(value.strip())
    return None


def classify_ret_code(ret_code: int, message: str, response: HttpResponse, now_ms: int) -> Outcome:
    """Outcome of a non-zero ``retCode``; codes missing from the table are definitive rejections."""
    error_class = RET_CODE_CLASS.get(ret_code, ErrorClass.OTHER)
    until: int | None = None
    if error_class is ErrorClass.RATE_LIMITED:
        until = _reset_until_ms(response) or retry_after_until_ms(response.header("Retry-After"), now_ms)
        if ret_code in _IP_BAN_CODES and until is None:
            until = now_ms + IP_LIMIT_COOLDOWN_MS
    return error(
        error_class,
        str(ret_code),
        message,
        http_status=response.status,
        until_ms=until,
        ip_ban=ret_code in _IP_BAN_CODES,
    )


def classify_response(response: HttpResponse, now_ms: int) -> Outcome:
    """Classify any Bybit REST response (order create / cancel / query …) per §6."""
    status = response.status
    if status == 403:
        # Per-IP limit ("access too frequent"): stop every session for at least 10 minutes.
        ban_until = (
            retry_after_until_ms(response.header("Retry-After"), now_ms) or now_ms + IP_LIMIT_COOLDOWN_MS
        )
        return error(ErrorClass.RATE_LIMITED, "HTTP403", "access too frequent", 403, ban_until, ip_ban=True)
    if status == 429:
        until = _reset_until_ms(response) or retry_after_until_ms(response.header("Retry-After"), now_ms)
        return error(ErrorClass.RATE_LIMITED, "HTTP429", "", 429, until)
    if status >= 500:
        return error(ErrorClass.UNKNOWN, f"HTTP{status}", _snippet(response), status)
    if status == 401:
        return error(ErrorClass.AUTH_ERROR, "HTTP401", "", 401)
    try:
        envelope = msgspec.json.decode(response.body, type=Envelope)
    except (msgspec.DecodeError, msgspec.ValidationError):
        if status == 200:
            # A 200 we cannot read: the request may have been executed.
            return error(ErrorClass.UNKNOWN, "UNPARSEABLE", "", status)
        return error(ErrorClass.OTHER, f"HTTP{status}", _snippet(response), status)
    if envelope.ret_code != 0:
        return classify_ret_code(envelope.ret_code, envelope.ret_msg, response, now_ms)
    try:
        result = msgspec.json.decode(envelope.result, type=_CreateResult)
        order_id = result.order_id
    except (msgspec.DecodeError, msgspec.ValidationError):
        order_id = ""
    return ack(order_id, status)
