"""
A real file system whose disk fails: ``python eiofs.py BACKING MOUNTPOINT`` (FUSE, foreground).

Every call passes through to the folder BACKING, except that while ``BACKING/.fail`` exists, a
write fails with EIO once the bytes it holds are spent (its content: how many more bytes to
take first, 0 if empty), as a disk with bad sectors does part way through a write. The kernel
sees real EIO from a real mounted file system; nothing in lc_trace is patched.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

from fuse import FUSE, FuseOSError, Operations


class FailingDisk(Operations):  # type: ignore[misc]
    def __init__(self, backing: str) -> None:
        self.backing = backing
        self.switch = os.path.join(backing, ".fail")

    def _real(self, path: str) -> str:
        return os.path.join(self.backing, path.lstrip("/"))

    def _os(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except OSError as exc:
            raise FuseOSError(exc.errno) from exc

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        info = self._os(os.lstat, self._real(path))
        keys = ("st_mode", "st_size", "st_uid", "st_gid", "st_nlink", "st_atime", "st_mtime", "st_ctime", "st_ino")
        return {key: getattr(info, key) for key in keys}

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *(n for n in self._os(os.listdir, self._real(path)) if n != ".fail")]

    def mkdir(self, path: str, mode: int) -> None:
        self._os(os.mkdir, self._real(path), mode)

    def rmdir(self, path: str) -> None:
        self._os(os.rmdir, self._real(path))

    def unlink(self, path: str) -> None:
        self._os(os.unlink, self._real(path))

    def rename(self, old: str, new: str) -> None:
        self._os(os.rename, self._real(old), self._real(new))

    def chmod(self, path: str, mode: int) -> None:
        self._os(os.chmod, self._real(path), mode)

    def open(self, path: str, flags: int) -> int:
        return int(self._os(os.open, self._real(path), flags & ~os.O_APPEND))

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        return int(self._os(os.open, self._real(path), os.O_RDWR | os.O_CREAT, mode))

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return bytes(self._os(os.pread, fh, size, offset))

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        if os.path.exists(self.switch):
            with open(self.switch, "r+") as switch:
                allowed = int(switch.read().strip() or 0)
                if allowed <= 0:
                    raise FuseOSError(errno.EIO)
                data = data[:allowed]
                switch.seek(0)
                switch.truncate()
                switch.write(str(allowed - len(data)))
        return int(self._os(os.pwrite, fh, data, offset))

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        self._os(os.truncate, self._real(path), length)

    def flush(self, path: str, fh: int) -> None:
        return None

    def release(self, path: str, fh: int) -> None:
        self._os(os.close, fh)


if __name__ == "__main__":
    FUSE(FailingDisk(sys.argv[1]), sys.argv[2], foreground=True, nothreads=True, direct_io=True)
