"""Binance USD-M error classification (venues.md §3.7, §3.8, §6)."""

from __future__ import annotations

import re

import msgspec

from titan.venues.common.outcome import ErrorClass, Outcome, ack, error, retry_after_until_ms
from titan.venues.common.types import HttpResponse

CODE_CLASS: dict[int, ErrorClass] = {
    # rate limit
    -1003: ErrorClass.RATE_LIMITED,
    -1015: ErrorClass.RATE_LIMITED,
    -1008: ErrorClass.RATE_LIMITED,
    # insufficient balance
    -2019: ErrorClass.INSUFFICIENT_BALANCE,
    -2018: ErrorClass.INSUFFICIENT_BALANCE,
    # invalid timestamp
    -1021: ErrorClass.CLOCK_ERROR,
    # duplicate client id: may exist → query
    -4116: ErrorClass.DUPLICATE_CLIENT_ID,
    # execution status unknown (-1000 "unknown error occurred": the same, to be safe)
    -1006: ErrorClass.UNKNOWN,
    -1007: ErrorClass.UNKNOWN,
    -1000: ErrorClass.UNKNOWN,
    # "Internal error; unable to process your request": a definitive failure per the docs
    -1001: ErrorClass.SERVICE_UNAVAILABLE,
    # auth (-1002 unauthorized, -2014 key format, -2015 key/IP/permissions)
    -1022: ErrorClass.AUTH_ERROR,
    -1002: ErrorClass.AUTH_ERROR,
    -2014: ErrorClass.AUTH_ERROR,
    -2015: ErrorClass.AUTH_ERROR,
    # invalid request (a bug on our side)
    -4015: ErrorClass.INVALID_REQUEST,
    -2022: ErrorClass.INVALID_REQUEST,
    -1102: ErrorClass.INVALID_REQUEST,
    -1111: ErrorClass.INVALID_REQUEST,
    -1121: ErrorClass.INVALID_REQUEST,
    # order / listen key does not exist
    -2013: ErrorClass.NOT_FOUND,
    -2011: ErrorClass.NOT_FOUND,
    -1125: ErrorClass.NOT_FOUND,
}

_BANNED_UNTIL = re.compile(r"banned until (\d{10,})")


class ErrorBody(msgspec.Struct):
    code: int = 0
    msg: str = ""


class _OrderId(msgspec.Struct, rename="camel"):
    order_id: int | None = None


def banned_until_ms(message: str) -> int | None:
    """The ``{ms}`` of a -1003 "IP banned until {ms}" message."""
    match = _BANNED_UNTIL.search(message)
    return int(match.group(1)) if match else None


def _error_body(response: HttpResponse) -> ErrorBody | None:
    try:
        body = msgspec.json.decode(response.body, type=ErrorBody)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return body if body.code != 0 else None


def _text(response: HttpResponse) -> str:
    return response.body[:300].decode(errors="replace")


def classify_code(code: int, message: str, response: HttpResponse, now_ms: int) -> Outcome:
    error_class = CODE_CLASS.get(code, ErrorClass.OTHER)
    until: int | None = None
    ip_ban = False
    if error_class is ErrorClass.RATE_LIMITED:
        banned = banned_until_ms(message)
        ip_ban = banned is not None or response.status == 418
        until = banned or retry_after_until_ms(response.header("Retry-After"), now_ms)
    return error(error_class, str(code), message, response.status, until, ip_ban)


def classify_response(response: HttpResponse, now_ms: int) -> Outcome:
    """Classify any Binance REST response per §6; order POST answers included."""
    status = response.status
    body = _error_body(response)
    if status in (429, 418):
        message = body.msg if body else _text(response)
        until = banned_until_ms(message) or retry_after_until_ms(response.header("Retry-After"), now_ms)
        code = str(body.code) if body else f"HTTP{status}"
        return error(ErrorClass.RATE_LIMITED, code, message, status, until, ip_ban=status == 418)
    if status == 503:
        text = body.msg if body else _text(response)
        lowered = text.lower()
        if "service unavailable" in lowered or "unable to process your request" in lowered:
            # The request was not processed: a certain failure (retry only idempotent calls).
            return error(ErrorClass.SERVICE_UNAVAILABLE, "HTTP503", text, status)
        # "Unknown error, please check your request or try again later." and anything else: may exist.
        return error(ErrorClass.UNKNOWN, "HTTP503", text, status)
    if status >= 500 or status == 408:
        return error(ErrorClass.UNKNOWN, str(body.code) if body else f"HTTP{status}", _text(response), status)
    if body is not None and body.code < 0:
        return classify_code(body.code, body.msg, response, now_ms)
    if status == 403:
        return error(ErrorClass.OTHER, "HTTP403", "WAF limit violated", status)
    if status >= 400:
        return error(ErrorClass.OTHER, f"HTTP{status}", _text(response), status)
    try:
        order_id = msgspec.json.decode(response.body, type=_OrderId).order_id
    except (msgspec.DecodeError, msgspec.ValidationError):
        if status == 200 and not response.body.strip().startswith((b"{", b"[")):
            return error(ErrorClass.UNKNOWN, "UNPARSEABLE", _text(response), status)
        order_id = None
    return ack("" if order_id is None else str(order_id), status)
