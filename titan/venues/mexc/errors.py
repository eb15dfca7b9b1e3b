"""MEXC contract error classification (venues.md §4.8, §4.9, §6)."""

from __future__ import annotations

import msgspec

from titan.venues.common.outcome import ErrorClass, Outcome, ack, error, retry_after_until_ms
from titan.venues.common.types import HttpResponse

CODE_CLASS: dict[int, ErrorClass] = {
    # rate limit
    510: ErrorClass.RATE_LIMITED,
    2037: ErrorClass.RATE_LIMITED,
    # insufficient balance
    2005: ErrorClass.INSUFFICIENT_BALANCE,
    2018: ErrorClass.INSUFFICIENT_BALANCE,
    # invalid timestamp
    513: ErrorClass.CLOCK_ERROR,
    # "Repeated requests": nearest thing to a duplicate client id (unverified) → may exist, query
    603: ErrorClass.DUPLICATE_CLIENT_ID,
    # auth: signature, unauthorized, key expired, IP not whitelisted, permissions (second-hand)
    602: ErrorClass.AUTH_ERROR,
    401: ErrorClass.AUTH_ERROR,
    402: ErrorClass.AUTH_ERROR,
    406: ErrorClass.AUTH_ERROR,
    701: ErrorClass.AUTH_ERROR,
    702: ErrorClass.AUTH_ERROR,
    # invalid request (a bug on our side): parameter, precision, external id too long, no such contract
    600: ErrorClass.INVALID_REQUEST,
    2015: ErrorClass.INVALID_REQUEST,
    2030: ErrorClass.INVALID_REQUEST,
    1001: ErrorClass.INVALID_REQUEST,
    # order does not exist (per-order cancel result, query)
    2040: ErrorClass.NOT_FOUND,
}


class Envelope(msgspec.Struct):
    """``{"success","code","message","data"}``."""

    success: bool = False
    code: int = 0
    message: str = ""
    data: msgspec.Raw = msgspec.Raw()


class _CreateData(msgspec.Struct, rename="camel"):
    order_id: str | int = ""


def classify_code(code: int, message: str, response: HttpResponse, now_ms: int) -> Outcome:
    error_class = CODE_CLASS.get(code, ErrorClass.OTHER)
    until = None
    if error_class is ErrorClass.RATE_LIMITED:
        # MEXC documents no rate-limit headers; honour Retry-After if one ever appears.
        until = retry_after_until_ms(response.header("Retry-After"), now_ms)
    return error(error_class, str(code), message, response.status, until)


def _created_order_id(data: msgspec.Raw) -> str:
    """``data`` is ``{"orderId":…}`` on /order/create and the id itself on legacy /order/submit."""
    raw = bytes(data).strip()
    if not raw or raw == b"null":
        return ""
    try:
        value = msgspec.json.decode(raw, type=_CreateData | str | int)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""
    if isinstance(value, _CreateData):
        return str(value.order_id)
    return str(value)


def classify_response(response: HttpResponse, now_ms: int) -> Outcome:
    """Classify any MEXC contract REST response per §6."""
    status = response.status
    if status == 429:
        until = retry_after_until_ms(response.header("Retry-After"), now_ms)
        return error(ErrorClass.RATE_LIMITED, "HTTP429", "", status, until)
    if status >= 500:
        return error(
            ErrorClass.UNKNOWN, f"HTTP{status}", response.body[:200].decode(errors="replace"), status
        )
    try:
        envelope = msgspec.json.decode(response.body, type=Envelope)
    except (msgspec.DecodeError, msgspec.ValidationError):
        if status == 200:
            return error(ErrorClass.UNKNOWN, "UNPARSEABLE", "", status)
        return error(ErrorClass.OTHER, f"HTTP{status}", response.body[:200].decode(errors="replace"), status)
    if envelope.code != 0:
        return classify_code(envelope.code, envelope.message, response, now_ms)
    if not envelope.success:
        # success:false without a code: the venue did not say what happened.
        return error(ErrorClass.UNKNOWN, "NO_CODE", envelope.message, status)
    return ack(_created_order_id(envelope.data), status)
