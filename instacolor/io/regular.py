"""Reading a small file (a hints file) without waiting on, or running into, a special file.

A file found beside an input (a ``NAME.hints.json`` sidecar) may be a FIFO, a device or
a folder: opening a FIFO for reading blocks until a writer comes (an unattended batch
would wait for ever), and ``/dev/zero`` never ends. :func:`read_small` opens such a file
without blocking, checks what it opened (not the path, which could change in between) and
refuses anything but a regular file; it reads at most ``limit`` bytes.

A file the user names on the command line may be a pipe on purpose
(``--hints <(jq ... list.json)``, ``--hints /dev/stdin``): with ``pipes=True`` a FIFO or
character device is read as any Unix tool reads it (waiting for its writer), still at
most ``limit`` bytes.

Example:
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "a.json"), "w") as f:
    ...     _ = f.write("{}")
    >>> read_small(os.path.join(folder, "a.json"), 10)
    b'{}'
    >>> read_small(folder, 10)
    Traceback (most recent call last):
    ...
    instacolor.io.regular.NotRegularFile: is not a regular file (a folder)
"""

from __future__ import annotations

import os
import stat

__all__ = ["FileTooLarge", "NotRegularFile", "file_kind", "read_small"]

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class NotRegularFile(OSError):
    """The path names a FIFO, a device, a socket or a folder where a file was expected."""


class FileTooLarge(OSError):
    """The file holds more bytes than the reader accepts."""


def file_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, in words: ``"a folder"``, ``"a FIFO"``..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket or other special file"


def read_small(path: str | os.PathLike, limit: int, *, pipes: bool = False) -> bytes:
    """The bytes of the file at ``path``, at most ``limit`` of them.

    Args:
        path: the file (symbolic links are followed).
        limit: the most bytes accepted.
        pipes: also read a FIFO or character device (a file the user named), waiting
            for its writer; else only a regular file, and a FIFO is never waited on.

    Returns:
        The file's bytes.

    Raises:
        NotRegularFile: ``path`` is a folder, a socket, or (without ``pipes``) a FIFO or
            device.
        FileTooLarge: the file holds more than ``limit`` bytes.
        OSError: it does not exist or cannot be read.
    """
    if pipes and _is_pipe(path):
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    else:
        fd = os.open(path, _FLAGS)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise NotRegularFile(f"is not a regular file ({file_kind(info.st_mode)})")
            if info.st_size > limit:
                raise FileTooLarge(f"is larger than {limit} bytes ({info.st_size})")
            with os.fdopen(fd, "rb") as handle:
                fd = -1  # the handle owns it now
                data = handle.read(limit + 1)
        finally:
            if fd >= 0:
                os.close(fd)
    if len(data) > limit:  # a pipe, or a file that grew while it was read
        raise FileTooLarge(f"is larger than {limit} bytes")
    return data


def _is_pipe(path: str | os.PathLike) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)
