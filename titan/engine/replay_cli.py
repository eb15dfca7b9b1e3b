"""``titan replay JOURNAL``: re-run a journal and print what it records and the state it rebuilds.

Output (deterministic, byte-identical across runs): one JSON line per journal entry (the state
changes and their order), then one line ``{"state": …}`` with the rebuilt state (positions, cash,
live legs and intents, risk control, policy hash), then a torn-tail note when the file ended in a
partial record. Exit 0, or 2 when the file cannot be read.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from titan.state.journal import scan_journal
from titan.state.replay import CoreState, replay_entries

_encode = msgspec.json.Encoder(order="deterministic").encode


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        sys.stderr.write("usage: titan replay JOURNAL\n")
        return 2
    if not Path(argv[0]).is_file():
        sys.stderr.write(f"titan replay: no journal at {argv[0]}\n")
        return 2
    try:
        scan = scan_journal(argv[0])
    except OSError as exc:
        sys.stderr.write(f"titan replay: {exc}\n")
        return 2
    out = sys.stdout.buffer
    for entry in scan.entries:
        out.write(_encode(entry) + b"\n")
    state = replay_entries(scan.entries, CoreState())
    out.write(b'{"state":' + _encode(state.snapshot()) + b"}\n")
    if scan.torn is not None:
        out.write(b'{"torn_tail":' + _encode(scan.torn) + b"}\n")
    out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
