"""instacolor.io.regular: a small file is read without waiting on a special file."""

from __future__ import annotations

import os
import threading

import pytest

from instacolor.io.regular import FileTooLarge, NotRegularFile, read_small


def test_a_regular_file_is_read_whole(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b'{"points": []}')
    assert read_small(path, 100) == b'{"points": []}'
    link = tmp_path / "link.json"
    link.symlink_to(path)
    assert read_small(link, 14) == b'{"points": []}'  # links followed, limit inclusive


def _in_thread(call) -> list:
    """``[value]`` or ``[exception]`` of ``call()``, which must end within 10 s."""
    out: list = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as exc:  # the test inspects what was raised
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "read_small waited"
    return out


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    (raised,) = _in_thread(lambda: read_small(fifo, 100))
    assert isinstance(raised, NotRegularFile) and "a FIFO" in str(raised)


def test_a_named_pipe_is_read_when_pipes_are_allowed(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(b'{"input": "a.png"}\n'))
    writer.start()
    (data,) = _in_thread(lambda: read_small(fifo, 100, pipes=True))
    writer.join(10)
    assert data == b'{"input": "a.png"}\n'
    writer = threading.Thread(target=lambda: fifo.write_bytes(b"x" * 200))
    writer.start()
    (raised,) = _in_thread(lambda: read_small(fifo, 100, pipes=True))
    assert isinstance(raised, FileTooLarge)  # a pipe is bounded too
    writer.join(1)


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "a device"), (".", "a folder")])
def test_devices_and_folders_are_refused(tmp_path, path, kind):
    target = tmp_path if path == "." else path
    with pytest.raises(NotRegularFile, match=kind):
        read_small(target, 100)


def test_an_endless_device_named_by_the_user_stops_at_the_limit():
    with pytest.raises(FileTooLarge, match="larger than 100 bytes"):
        read_small("/dev/zero", 100, pipes=True)


def test_too_large_and_missing_files_are_refused(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"x" * 101)
    with pytest.raises(FileTooLarge, match="larger than 100 bytes"):
        read_small(path, 100)
    with pytest.raises(FileNotFoundError):
        read_small(tmp_path / "missing.json", 100)
    assert path.read_bytes() == b"x" * 101  # only read
