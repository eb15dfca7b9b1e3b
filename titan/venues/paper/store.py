"""Where a paper gateway keeps the orders it holds, so a restarted gateway can end them cleanly.

One small JSON file (``<run_dir>/paper-book.json``), replaced atomically (write, fsync, rename) each
time the set of queued/resting orders changes — never for orders that fill at once, so the hot path
writes nothing. A restarted gateway reads it and reports every order it names EXPIRED
(:meth:`titan.venues.paper.matching.PaperBook.restore`): core sees a definitive end, not a lost order.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import msgspec

from titan.venues.paper.matching import PaperBookState

FILE_NAME = "paper-book.json"


class PaperStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._enc = msgspec.json.Encoder()
        self._dec = msgspec.json.Decoder(PaperBookState)

    def load(self) -> PaperBookState:
        """The last saved state; empty when there is none or it cannot be read (logged by the caller)."""
        try:
            return self._dec.decode(self.path.read_bytes())
        except FileNotFoundError:
            return PaperBookState()
        except (msgspec.DecodeError, msgspec.ValidationError):
            # Written atomically, so this is outside damage: keep the evidence, start empty.
            os.replace(self.path, self.path.with_suffix(".corrupt"))
            return PaperBookState()

    def save(self, state: PaperBookState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(self._enc.encode(state))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
