"""Reply and error codes of fastpath.md §11 (the strings are the wire contract)."""

from __future__ import annotations

from typing import Final

# Protocol / authentication failures: replies carry `error`, so the TypeScript client raises.
INVALID_SIGNATURE: Final = "INVALID_SIGNATURE"
IPC_ERROR: Final = "IPC_ERROR"
FRAME_TOO_LARGE: Final = "FRAME_TOO_LARGE"
UNKNOWN_SIGNAL_TYPE: Final = "UNKNOWN_SIGNAL_TYPE"
INVALID_SIGNAL: Final = "INVALID_SIGNAL"
TIMESTAMP_OUT_OF_WINDOW: Final = "TIMESTAMP_OUT_OF_WINDOW"
REPLAY_DETECTED: Final = "REPLAY_DETECTED"
REPLAY_CACHE_FULL: Final = "REPLAY_CACHE_FULL"
ENGINE_NOT_READY: Final = "ENGINE_NOT_READY"
MAX_CONNECTIONS_REACHED: Final = "MAX_CONNECTIONS_REACHED"
# Our addition (issue #3): the command ring stayed full past the hold bound; nothing reached core.
BUSY: Final = "BUSY"

# IPC_ERROR details (the `message` field).
MSG_UNKNOWN_FRAMING: Final = "UNKNOWN_FRAMING"
MSG_DUPLICATE_KEY: Final = "DUPLICATE_KEY"
MSG_INVALID_JSON: Final = "INVALID_JSON"
MSG_NOT_AN_OBJECT: Final = "NOT_AN_OBJECT"
MSG_BAD_ENVELOPE: Final = "BAD_ENVELOPE"
MSG_BAD_LENGTH: Final = "BAD_FRAME_LENGTH"
MSG_INTERNAL: Final = "INTERNAL_ERROR"

PROTOCOL_CODES: Final = frozenset(
    {
        INVALID_SIGNATURE,
        IPC_ERROR,
        FRAME_TOO_LARGE,
        UNKNOWN_SIGNAL_TYPE,
        INVALID_SIGNAL,
        TIMESTAMP_OUT_OF_WINDOW,
        REPLAY_DETECTED,
        REPLAY_CACHE_FULL,
        ENGINE_NOT_READY,
        MAX_CONNECTIONS_REACHED,
        BUSY,
    }
)
