"""
LogFile: one log path that any number of writers, in any number of processes, append to.

Everything here runs on a writer thread, once per batch, never on the caller's path. Each batch
is written under an exclusive ``flock`` on the log's folder (the kernel releases it if the
process dies), and under that lock:

1. **Follow the path.** If the path no longer names the open file (another process rotated
   it, logrotate renamed it, someone deleted it), open the file now at the path, as
   ``logging.handlers.WatchedFileHandler`` does. A file truncated underneath (logrotate's
   ``copytruncate``) needs nothing: ``O_APPEND`` writes at its new end, so no NUL holes.
2. **Repair the tail.** A writer killed mid-write, or a failed write whose cut failed too, may
   have left part of a line at the end; it is cut back to the last newline so the next line is
   never glued to it.
3. **Rotate** when the batch would take the file past ``max_bytes``. The size is read from the
   file, so every process counts every process's bytes, and backups shift under the same lock,
   so no process overwrites a backup another has just made.
4. **Write whole lines only.** If a write fails part way (ENOSPC, EDQUOT, EFBIG, EIO), the file
   is truncated back to the last whole line it received: a line is in the file, or it is lost
   and counted, never half of it.

The folder, not a lock file, is locked so that no extra file sits beside the logs for a
shipper to read (Filebeat's ``*.jsonl.*`` would match ``lc_trace.jsonl.lock``). A batch costs
six system calls (two ``flock``, ``stat``, ``pread``, ``write``, and a ``fstat`` only when the
path changed); a batch is up to 4,096 lines.
"""

from __future__ import annotations

import concurrent.futures
import errno
import fcntl
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiofiles
from aiofiles.threadpool.binary import AsyncFileIO

from lc_trace._paths import rotated_path

__all__ = ["InlineExecutor", "LogFile", "PartialWrite", "cut_partial_tail"]

_SCAN_CHUNK = 1 << 16


class InlineExecutor(concurrent.futures.Executor):
    """
    Runs each submitted call at once on the calling (writer) thread: aiofiles' file calls need
    no thread hop there, and keep working during interpreter shutdown, when Python refuses new
    thread-pool work, which is exactly when the last lines must still be written.
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


class PartialWrite(Exception):
    """
    A batch that failed part way: ``written`` whole lines reached the file, the rest did not.
    """

    def __init__(self, written: int, error: BaseException) -> None:
        super().__init__(written, error)
        self.written = written
        self.error = error


class LogFile:
    """
    The file at *path*, appended to in whole-line batches, safe beside other processes.

    Args:
        path: the log file (its folder exists; ``prepare_path`` made it).
        max_bytes: rotate before a batch would take the file past this size (0: never).
        backups: rotated files kept as ``path.1`` … ``path.N``; older ones are deleted.
    """

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        self.path = path
        self._name = str(path)
        self._max_bytes = max_bytes
        self._backups = backups
        self._executor = InlineExecutor()
        self._file: AsyncFileIO | None = None
        self._identity: tuple[int, int] = (-1, -1)
        self._regular = True
        self._dir_fd = -1

    # -- opening and closing ----------------------------------------------------------------

    async def open(self) -> None:
        """
        Open the folder (the lock) and the file at the path, creating what is missing.
        """
        self._open_folder()
        await self._open_file()

    async def close(self) -> None:
        """
        Close the file and the folder.
        """
        if self._file is not None:
            file, self._file = self._file, None
            await file.close()
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1

    def forget_inherited(self) -> None:
        """
        In a forked child: close the parent's descriptors so the child's own open takes a lock
        of its own (an inherited descriptor shares the parent's lock).
        """
        for fd in (self._dir_fd, self._file.fileno() if self._file is not None else -1):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._file, self._dir_fd = None, -1

    def _open_folder(self) -> None:
        folder = os.path.dirname(self._name)
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
        self._dir_fd = fd

    async def _open_file(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            try:
                await file.close()
            except OSError:
                pass
        # Read-write so the tail can be checked; a FIFO or device is opened write-only (to open
        # a FIFO read-write would make lc_trace a reader of its own pipe).
        try:
            access = os.O_RDWR if stat.S_ISREG(os.stat(self._name).st_mode) else os.O_WRONLY
        except FileNotFoundError:
            access = os.O_RDWR
        flags = access | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(self._name, flags, 0o600)
        except FileNotFoundError:  # the folder was deleted: make it again
            self._open_folder()
            fd = os.open(self._name, flags, 0o600)
        info = os.fstat(fd)
        self._identity = (info.st_dev, info.st_ino)
        self._regular = stat.S_ISREG(info.st_mode)
        # Unbuffered, so a write returns how many bytes the kernel took: a failed batch is cut exactly.
        self._file = await aiofiles.open(fd, "ab", buffering=0, executor=self._executor)

    # -- one batch --------------------------------------------------------------------------

    async def write(self, lines: list[bytes]) -> int:
        """
        Append *lines* (each ending in ``\\n``), rotating between them where the size limit
        says; returns how many were written, or raises ``PartialWrite`` saying how many were.
        """
        locked = self._lock()
        try:
            size = await self._follow()
            if not self._regular:  # a FIFO or a device: no size, no rotation, nothing to repair
                await self._append(b"".join(lines), 0)
                return len(lines)
            size = self._repair_tail(size)
            return await self._write_sized(lines, size)
        finally:
            if locked:
                fcntl.flock(self._dir_fd, fcntl.LOCK_UN)

    async def _write_sized(self, lines: list[bytes], size: int) -> int:
        limit = self._max_bytes
        if not limit or size + sum(map(len, lines)) <= limit:
            await self._append(b"".join(lines), size)
            return len(lines)
        written = 0  # fill each file up to the limit and rotate between (lines stay whole)
        while written < len(lines):
            if size and size + len(lines[written]) > limit:
                try:
                    await self._rotate()
                except OSError as exc:
                    raise PartialWrite(written, exc) from exc
                size = 0
            room, end = limit - size, written
            while end < len(lines) and (end == written or len(lines[end]) <= room):
                room -= len(lines[end])
                end += 1
            data = b"".join(lines[written:end])
            try:
                await self._append(data, size)
            except PartialWrite as partial:
                raise PartialWrite(written + partial.written, partial.error) from partial.error
            size += len(data)
            written = end
        return written

    def _lock(self) -> bool:
        if self._dir_fd < 0:
            return False
        try:
            fcntl.flock(self._dir_fd, fcntl.LOCK_EX)
        except OSError:  # a file system without flock: one process still writes correctly
            return False
        return True

    async def _follow(self) -> int:
        try:
            info = os.stat(self._name)
            if (info.st_dev, info.st_ino) == self._identity and self._file is not None:
                return info.st_size
        except FileNotFoundError:
            pass
        await self._open_file()
        assert self._file is not None
        return os.fstat(self._file.fileno()).st_size

    def _repair_tail(self, size: int) -> int:
        if size == 0:
            return 0
        assert self._file is not None
        fd = self._file.fileno()
        if os.pread(fd, 1, size - 1) == b"\n":
            return size
        return cut_partial_tail(fd, size)

    async def _append(self, data: bytes, start: int) -> None:
        assert self._file is not None
        done = 0
        view = memoryview(data)
        try:
            while done < len(data):
                count = await self._file.write(view[done:])
                if not count:
                    raise OSError(errno.EIO, "the file took no bytes")
                done += count
        except OSError as exc:
            keep = data.rfind(b"\n", 0, done) + 1
            if keep < done:
                self._cut_back(start, done, keep)
            raise PartialWrite(data.count(b"\n", 0, keep), exc) from exc

    def _cut_back(self, start: int, done: int, keep: int) -> None:
        """After a failed write, remove the part of a line it left; the next batch retries if this fails."""
        assert self._file is not None
        fd = self._file.fileno()
        try:
            if self._regular and os.fstat(fd).st_size == start + done:
                os.ftruncate(fd, start + keep)
        except OSError:
            pass  # _repair_tail cuts it before the next batch

    async def _rotate(self) -> None:
        assert self._file is not None
        if self._backups == 0:
            os.ftruncate(self._file.fileno(), 0)
            return
        for index in range(self._backups - 1, 0, -1):
            try:
                os.replace(rotated_path(self._name, index), rotated_path(self._name, index + 1))
            except FileNotFoundError:
                pass
        os.replace(self._name, rotated_path(self._name, 1))
        await self._open_file()


def cut_partial_tail(fd: int, size: int | None = None) -> int:
    """
    Truncate the file after its last newline (a half line a killed writer left); returns the new size.
    """
    if size is None:
        size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    end = size
    while end > 0:
        start = max(0, end - _SCAN_CHUNK)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            os.ftruncate(fd, keep)
            return keep
        end = start
    os.ftruncate(fd, 0)
    return 0
