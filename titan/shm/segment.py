"""Named POSIX shared-memory segments (``posix_ipc.SharedMemory`` + ``mmap``).

Why not ``multiprocessing.shared_memory``: on Python 3.11 a process that merely *attaches* registers the
segment with its own resource tracker, which unlinks it when that process exits, so a crashed or
restarted child would destroy the supervisor's segment (measured; see ipc-python-2core.md, Traps).
``posix_ipc`` has no tracker: only an explicit :meth:`Segment.unlink` removes a name.

Page faults are paid at startup, not on the hot path: the creator writes every page once, and every
mapping (creator and attachers) uses ``MAP_POPULATE`` so its page tables are filled inside ``mmap``.

Names are given without the leading slash (``titan.core.in``); the slash POSIX wants is added here.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from types import TracebackType

import posix_ipc

PAGE_SIZE = mmap.PAGESIZE
_MAP_POPULATE: int = getattr(mmap, "MAP_POPULATE", 0)


def os_name(name: str) -> str:
    """The name handed to ``shm_open``: exactly one leading slash."""
    bare = name.lstrip("/")
    if not bare or "/" in bare:
        raise ValueError(f"invalid shared-memory name {name!r}: must be non-empty and contain no '/'")
    return "/" + bare


def _map(fd: int, size: int) -> mmap.mmap:
    return mmap.mmap(
        fd,
        size,
        flags=mmap.MAP_SHARED | _MAP_POPULATE,
        prot=mmap.PROT_READ | mmap.PROT_WRITE,
    )


class Segment:
    """One mapping of a named shared-memory segment.

    ``buf`` is a writable byte memoryview of the whole segment. Views derived from it (casts,
    slices, numpy arrays) must be released before :meth:`close` can unmap eagerly; if some are still
    alive, the mapping is unmapped when the last of them is garbage-collected.
    """

    __slots__ = ("_mmap", "buf", "name", "size")

    name: str
    size: int
    buf: memoryview

    def __init__(self, name: str, mapping: mmap.mmap) -> None:
        self.name = name
        self.size = len(mapping)
        self._mmap: mmap.mmap | None = mapping
        self.buf = memoryview(mapping)

    @classmethod
    def create(cls, name: str, size: int) -> Segment:
        """Create a new segment of ``size`` bytes; ``FileExistsError`` if the name exists."""
        if size <= 0:
            raise ValueError(f"segment {name!r}: size must be positive, got {size}")
        try:
            shm = posix_ipc.SharedMemory(os_name(name), flags=posix_ipc.O_CREX, mode=0o600, size=size)
        except posix_ipc.ExistentialError as exc:
            raise FileExistsError(f"shared-memory segment {name!r} already exists") from exc
        try:
            mapping = _map(shm.fd, size)
        except BaseException:
            shm.close_fd()
            posix_ipc.unlink_shared_memory(os_name(name))
            raise
        shm.close_fd()
        # Touch every page once so the memory is allocated now, not on the first hot-path write.
        for offset in range(0, size, PAGE_SIZE):
            mapping[offset] = 0
        return cls(name, mapping)

    @classmethod
    def attach(cls, name: str) -> Segment:
        """Map an existing segment; ``FileNotFoundError`` if there is none by that name."""
        try:
            shm = posix_ipc.SharedMemory(os_name(name))
        except posix_ipc.ExistentialError as exc:
            raise FileNotFoundError(f"shared-memory segment {name!r} does not exist") from exc
        try:
            size = os.fstat(shm.fd).st_size
            if size <= 0:
                raise ValueError(f"shared-memory segment {name!r} has size 0 (creator not finished?)")
            mapping = _map(shm.fd, size)
        finally:
            shm.close_fd()
        return cls(name, mapping)

    def close(self) -> None:
        """Unmap (idempotent). The name stays; other processes are unaffected."""
        mapping = self._mmap
        if mapping is None:
            return
        self._mmap = None
        # If views derived from buf are still alive, munmap happens when the last one is collected.
        with contextlib.suppress(BufferError):
            self.buf.release()
        with contextlib.suppress(BufferError):
            mapping.close()

    def unlink(self) -> None:
        """Remove the name (supervisor only); ``FileNotFoundError`` if it is already gone.

        Existing mappings stay valid until closed."""
        if not unlink_quietly(self.name):
            raise FileNotFoundError(f"shared-memory segment {self.name!r} does not exist")

    @property
    def closed(self) -> bool:
        return self._mmap is None

    def __enter__(self) -> Segment:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Segment(name={self.name!r}, size={self.size})"


def unlink_quietly(name: str) -> bool:
    """Remove a segment name if it exists; True if something was removed."""
    try:
        posix_ipc.unlink_shared_memory(os_name(name))
    except posix_ipc.ExistentialError:
        return False
    return True


def exists(name: str) -> bool:
    """Whether a segment of that name exists (for tests and the supervisor's cleanup checks)."""
    try:
        shm = posix_ipc.SharedMemory(os_name(name))
    except posix_ipc.ExistentialError:
        return False
    shm.close_fd()
    return True
