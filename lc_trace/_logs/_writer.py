"""
LineWriter: gets JSON lines from any thread onto disk without the caller ever waiting.

The caller's side (``emit``) is one length check, one deque append and, once per batch, a
wake-up. Everything slow happens on the writer's own thread, in its own event loop, where
aiofiles writes whole batches: one write per line would cost ~70 us each; a joined batch
~0.2 us a line (measured; docs/decisions.md). What a batch does to be safe
beside other processes, logrotate and failing disks is ``LogFile``'s job (``_logfile.py``).

Full-queue policy: ``drop`` (default) refuses the newest line and counts it; ``wait`` makes
the caller wait for room up to ``wait_timeout_s``, then drops and counts. Lines a failing disk
refuses are counted too. Either way the count is written into the log file itself, as an
``lc_trace_dropped`` line, as soon as the file takes lines again.

A crash loses at most the lines still queued (bounded by the flush interval), and the next
writer on that folder says how many it knew of (``_marker.py``). Once the process is stopping
(SIGTERM, ``_shutdown.py``) every line is written before ``emit`` returns. Lines are only
ever written whole: a half line left by a killed process is cut off before the next batch
(or when the file is next opened), so a JSON-lines reader never meets a broken line mid-file.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import stat
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Literal

from lc_trace._lifecycle import _shutdown
from lc_trace._logs._file import LogFile, PartialWrite, cut_partial_tail
from lc_trace._logs._marker import LiveMarker, report_dead
from lc_trace._stats import Stats, report_once

__all__ = ["LineWriter", "LogPathError"]

DEFAULT_QUEUE_SIZE = 65_536
_DEFAULT_MAX_BATCH = 4_096
DEFAULT_FLUSH_INTERVAL_MS = 500
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_BACKUPS = 5
_DEFAULT_WAIT_TIMEOUT_S = 1.0
_CLOSE_TIMEOUT_S = 10.0
_THROUGH_TIMEOUT_MS = 1_000  # how long a line waits for the disk once the process is stopping
_DROP_REASONS = ("dropped_queue_full", "dropped_write_error")

_logger = logging.getLogger("lc_trace")

_LIVE: weakref.WeakSet[LineWriter] = weakref.WeakSet()


class LogPathError(OSError):
    """
    The log file cannot be created or written; raised when the handler is built, never later.
    """


def prepare_path(path: str | os.PathLike[str]) -> Path:
    """
    Make the log file's folder (``0700``) and file (``0600``), cut a half line a crash may have
    left at its end, and fail now, with a message saying what to do, if it cannot be written.
    """
    target = Path(path).expanduser().absolute()
    try:
        if target.is_dir():
            raise IsADirectoryError(21, "is a directory", str(target))
        if not target.parent.exists():
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                with _folder_lock(target.parent):  # never cut a line another process is writing
                    cut_partial_tail(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise LogPathError(
            exc.errno,
            f"lc_trace cannot write its log file {target}: {exc.strerror or exc}. "
            "Pass log_path= a writable file (or set LC_TRACE_LOG_PATH), or log_path=None to turn file logging off",
        ) from exc
    return target


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass  # no flock on this file system: as LogFile, go on unlocked
        yield
    finally:
        os.close(fd)


class LineWriter:
    """
    Appends lines (bytes ending in ``\\n``) to a file from a background thread.

    Args:
        path: the file; its folder is created ``0700`` and the file ``0600``.
        stats: where drops and writes are counted.
        queue_size: lines held before the full-queue policy applies.
        flush_interval_s: longest a line waits before it is written.
        max_bytes: rotate when the file would grow past this size (0: never).
        backups: rotated files kept as ``path.1`` … ``path.N``.
        on_full: ``"drop"`` or ``"wait"`` (see the module docstring).
        drop_line: renders the line that reports drops, given the new drops by reason
            (``dropped_queue_full``, ``dropped_write_error``) and the total so far.
    """

    _wake_pending: bool

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        stats: Stats | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_batch: int = _DEFAULT_MAX_BATCH,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_MS / 1000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = DEFAULT_BACKUPS,
        on_full: Literal["drop", "wait"] = "drop",
        wait_timeout_s: float = _DEFAULT_WAIT_TIMEOUT_S,
        drop_line: Callable[[Mapping[str, int], int], bytes] | None = None,
    ) -> None:
        if queue_size < 1 or max_batch < 1:
            raise ValueError("queue_size and max_batch must be at least 1")
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval must be positive, got {flush_interval_s}")
        if max_bytes < 0 or backups < 0:
            raise ValueError("log_max_bytes and log_backups must not be negative")
        if on_full not in ("drop", "wait"):
            raise ValueError(f"on_queue_full must be 'drop' or 'wait', got {on_full!r}")
        self.path = prepare_path(path)
        self.stats = stats if stats is not None else Stats()
        self._queue: deque[bytes] = deque()
        self._queue_size = queue_size
        self._max_batch = max_batch
        self._wake_at = min(max_batch, queue_size)
        self._interval = flush_interval_s
        self._max_bytes = max_bytes
        self._backups = backups
        self._wait = on_full == "wait"
        self._wait_timeout = wait_timeout_s
        self._drop_line = drop_line
        self._log = LogFile(self.path, max_bytes=max_bytes, backups=backups)
        self._closed = False
        self._through = False  # the process is stopping: each line is written before emit returns
        self._armed = False  # lc_trace's SIGTERM handler was replaced: the main thread's next line re-chains it
        self._plain = True  # none of those, nor closed: emit's one check on its common path
        with contextlib.suppress(Exception):  # a report that fails must not stop the handler from being built
            report_dead(self.path)
        self._marker = LiveMarker(self.path, flush_interval_s)
        self._reported_drops = dict.fromkeys(_DROP_REASONS, 0)
        self._failing: BaseException | None = None  # the error of the write-error episode under way
        self._episode_lost = 0
        self._start_thread()
        _LIVE.add(self)
        _shutdown.register_writer(self)

    # -- caller side ------------------------------------------------------------------------

    def emit(self, line: bytes) -> None:
        """
        Queue one line. Never blocks under the ``drop`` policy (until the process is stopping),
        never raises.
        """
        if not self._plain:
            self._emit_special(line)
            return
        queue = self._queue
        if len(queue) >= self._queue_size and not self._wait_for_room():
            self.stats.add("dropped_queue_full")
            report_once(
                self.stats,
                "queue_full",
                "the log writer queue is full (%d lines); lines are being dropped and counted",
                self._queue_size,
            )
            return
        queue.append(line)
        if len(queue) >= self._wake_at and not self._wake_pending:
            self._wake_pending = True
            self._call_soon(self._wake_set)

    def _emit_special(self, line: bytes) -> None:
        """``emit`` when the writer is closed, armed (see ``arm``) or writing through (see ``write_through``)."""
        if self._closed:
            self.stats.add("dropped_after_close")
            report_once(
                self.stats,
                "after_close",
                "log lines emitted after close() are dropped (counted in stats.dropped_after_close)",
            )
            return
        if not self._through:  # armed
            if threading.current_thread() is threading.main_thread():
                _shutdown.install()
                self.disarm()
            self._enqueue(line)
            return
        if len(self._queue) >= self._queue_size:
            self.stats.add("dropped_queue_full")
            return
        self._queue.append(line)
        if threading.current_thread() is not self._thread:
            self.flush(_THROUGH_TIMEOUT_MS)

    def _enqueue(self, line: bytes) -> None:
        """``emit``'s common path, for the slow one."""
        queue = self._queue
        if len(queue) >= self._queue_size and not self._wait_for_room():
            self.stats.add("dropped_queue_full")
            report_once(
                self.stats,
                "queue_full",
                "the log writer queue is full (%d lines); lines are being dropped and counted",
                self._queue_size,
            )
            return
        queue.append(line)
        if len(queue) >= self._wake_at and not self._wake_pending:
            self._wake_pending = True
            self._call_soon(self._wake_set)

    def write_through(self) -> None:
        """
        The process is stopping (SIGTERM): from now on ``emit`` returns once its line is in the
        file, so whatever finishes before the process dies, by a re-raised signal or a SIGKILL
        after a grace period, is there.
        """
        self._through = True
        self._plain = False

    def batch_again(self) -> None:
        """The process went on after SIGTERM: back to writing in batches."""
        self._through = False
        self._plain = not (self._closed or self._armed)

    def arm(self) -> None:
        """Something replaced lc_trace's SIGTERM handler: the next line on the main thread puts it back in front."""
        if not self._armed:
            self._armed = True
            self._plain = False

    def disarm(self) -> None:
        self._armed = False
        self._plain = not (self._closed or self._through)

    def _wait_for_room(self) -> bool:
        if not self._wait:
            return False
        deadline = time.monotonic() + self._wait_timeout
        self._call_soon(self._wake_set)
        while len(self._queue) >= self._queue_size:
            if self._closed or time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    def flush(self, timeout_millis: int = 30_000) -> bool:
        """
        Block until every line queued before this call is written; False on timeout.
        """
        future = self._request_flush()
        if future is None:
            return not self._queue
        try:
            return bool(future.result(timeout_millis / 1000))
        except concurrent.futures.TimeoutError:
            return False

    async def aflush(self, timeout_millis: int = 30_000) -> bool:
        """
        ``flush`` for async code: the app's loop keeps running while the writer works.
        """
        future = self._request_flush()
        if future is None:
            return not self._queue
        try:
            waiter: asyncio.Future[bool] = asyncio.wrap_future(future)
            return bool(await asyncio.wait_for(waiter, timeout_millis / 1000))
        except TimeoutError:
            return False

    def close(self, timeout_millis: int = int(_CLOSE_TIMEOUT_S * 1000)) -> bool:
        """
        Refuse new lines, write every queued one, stop the thread. Idempotent.
        """
        if self._closed:
            return not self._queue
        self._closed = True
        self._plain = False
        _LIVE.discard(self)
        loop, thread = self._loop, self._thread
        if loop is not None and thread.is_alive():
            try:
                loop.call_soon_threadsafe(self._stop)
            except RuntimeError:  # loop already closed
                pass
            thread.join(timeout_millis / 1000)
        done = not self._queue and not thread.is_alive()
        if done:
            self._marker.remove()
        return done

    @property
    def closed(self) -> bool:
        """
        True once ``close()`` has been called.
        """
        return self._closed

    def _request_flush(self) -> concurrent.futures.Future[bool] | None:
        loop = self._loop
        if loop is None or not self._thread.is_alive():
            return None
        future: concurrent.futures.Future[bool] = concurrent.futures.Future()
        try:
            loop.call_soon_threadsafe(self._add_flush_waiter, future)
        except RuntimeError:
            return None
        return future

    def _call_soon(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(callback)
            except RuntimeError:
                pass

    # -- writer thread ----------------------------------------------------------------------

    def _start_thread(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_pending = False
        self._stopping = False
        self._flush_waiters: list[concurrent.futures.Future[bool]] = []
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="lc_trace-writer", daemon=True)
        self._thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._wake = asyncio.Event()
        ready.set()
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    def _wake_set(self) -> None:
        self._wake.set()

    def _stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def _add_flush_waiter(self, future: concurrent.futures.Future[bool]) -> None:
        self._flush_waiters.append(future)
        self._wake.set()

    async def _main(self) -> None:
        try:
            await self._log.open()
        except OSError as exc:  # prepare_path just opened it; a race with a deletion or a full disk
            self._start_failing(exc)
        try:
            while True:
                try:
                    await asyncio.wait_for(self._wake.wait(), self._interval)
                except TimeoutError:
                    pass
                self._wake.clear()
                self._wake_pending = False
                waiters, self._flush_waiters = self._flush_waiters, []
                await self._drain()
                self._marker.update(
                    self.stats.lines_written, len(self._queue), self.stats.spans_exported, self._through
                )
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(True)
                if self._stopping:
                    break
            await self._drain()
        finally:
            await self._log.close()
            for waiter in self._flush_waiters:
                if not waiter.done():
                    waiter.set_result(not self._queue)

    async def _drain(self) -> None:
        queue = self._queue
        pending = len(queue)
        await self._write_drop_report()
        while pending > 0:
            take = min(pending, self._max_batch)
            batch = [queue.popleft() for _ in range(take)]
            pending -= take
            written = await self._write(batch)
            self.stats.add("lines_written", written)
            if written < len(batch):
                self.stats.add("dropped_write_error", len(batch) - written)
                self._episode_lost += len(batch) - written

    async def _write_drop_report(self) -> None:
        if self._drop_line is None:
            return
        counts = {reason: getattr(self.stats, reason) for reason in _DROP_REASONS}
        new = {reason: counts[reason] - self._reported_drops[reason] for reason in _DROP_REASONS}
        if not any(new.values()):
            return
        try:
            line = self._drop_line(new, sum(counts.values()))
        except Exception:
            self.stats.add("internal_errors")
            return
        if await self._write([line]):  # not written: the next drain reports these drops again
            self._reported_drops = counts

    async def _write(self, batch: list[bytes]) -> int:
        """
        Write *batch*; return how many lines reached the file. Failures open a write-error
        episode (one warning) that the next successful write closes (one more).
        """
        try:
            written = await self._log.write(batch)
        except PartialWrite as failure:
            self._start_failing(failure.error)
            return failure.written
        except Exception as exc:  # a vanished folder, a refused open: nothing of this batch was written
            self._start_failing(exc)
            return 0
        if self._failing is not None:
            _logger.warning(
                "lc_trace: writing %s again after %s; %d log lines were lost (counted in stats.dropped_write_error)",
                self.path,
                self._failing,
                self._episode_lost,
            )
            self._failing = None
        return written

    def _start_failing(self, error: BaseException) -> None:
        if self._failing is None:
            self._failing, self._episode_lost = error, 0
            _logger.warning(
                "lc_trace: cannot write %s: %s; log lines are dropped and counted until it can be written again",
                self.path,
                error,
            )

    def _after_fork_in_child(self) -> None:
        # The parent writes what it queued; the child starts clean, with its own descriptors
        # (and so its own lock), its own thread, and counters of its own lines only.
        self._queue.clear()
        self._log.forget_inherited()
        self.stats.reset_after_fork()
        self._reported_drops = dict.fromkeys(_DROP_REASONS, 0)
        self._failing, self._episode_lost = None, 0
        self._through = False
        self._armed = not self._closed  # the child's signal handlers are what runs next sets: look again
        self._plain = False
        self._marker.after_fork_in_child()
        if not self._closed:
            self._start_thread()


def _close_all() -> None:
    for writer in list(_LIVE):
        writer.close()


def _after_fork() -> None:
    for writer in list(_LIVE):
        writer._after_fork_in_child()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
