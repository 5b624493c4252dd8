"""Reading a small file a caller names (a hints file): a regular file only, bounded in size.

A path given on the command line or found beside an input may name a FIFO, a device or a
folder: opening a FIFO for reading blocks until a writer comes (an unattended batch would
wait for ever), and ``/dev/zero`` never ends. :func:`read_regular` opens without blocking,
checks what it opened (not the path, which could change in between), and reads at most
``limit`` bytes.

Example:
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "a.json"), "w") as f:
    ...     _ = f.write("{}")
    >>> read_regular(os.path.join(folder, "a.json"), 10)
    b'{}'
    >>> read_regular(folder, 10)
    Traceback (most recent call last):
    ...
    instacolor.io.regular.NotRegularFile: is not a regular file (a folder)
"""

from __future__ import annotations

import os
import stat

__all__ = ["FileTooLarge", "NotRegularFile", "read_regular"]

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class NotRegularFile(OSError):
    """The path names a FIFO, a device, a socket or a folder."""


class FileTooLarge(OSError):
    """The file holds more bytes than the reader accepts."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket or other special file"


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them.

    Args:
        path: the file (symbolic links are followed).
        limit: the most bytes accepted.

    Returns:
        The file's bytes.

    Raises:
        NotRegularFile: ``path`` is a FIFO, device, socket or folder (never waited on).
        FileTooLarge: the file holds more than ``limit`` bytes.
        OSError: it does not exist or cannot be read.
    """
    fd = os.open(path, _FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(f"is not a regular file ({_kind(info.st_mode)})")
        if info.st_size > limit:
            raise FileTooLarge(f"is larger than {limit} bytes ({info.st_size})")
        with os.fdopen(fd, "rb") as handle:
            fd = -1  # the handle owns it now
            data = handle.read(limit + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > limit:  # grew while it was read
        raise FileTooLarge(f"is larger than {limit} bytes")
    return data
