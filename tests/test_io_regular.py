"""instacolor.io.regular: a named small file is read only if it is a regular file."""

from __future__ import annotations

import os
import threading

import pytest

from instacolor.io.regular import FileTooLarge, NotRegularFile, read_regular


def test_a_regular_file_is_read_whole(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b'{"points": []}')
    assert read_regular(path, 100) == b'{"points": []}'
    link = tmp_path / "link.json"
    link.symlink_to(path)
    assert read_regular(link, 14) == b'{"points": []}'  # links followed, limit inclusive


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    result: list[BaseException] = []
    thread = threading.Thread(target=lambda: _catch(result, fifo), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "read_regular waited on a FIFO"
    assert isinstance(result[0], NotRegularFile) and "a FIFO" in str(result[0])


def _catch(into: list, path) -> None:
    try:
        read_regular(path, 100)
    except BaseException as exc:  # the test inspects what was raised
        into.append(exc)


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "a device"), (".", "a folder")])
def test_devices_and_folders_are_refused(tmp_path, path, kind):
    target = tmp_path if path == "." else path
    with pytest.raises(NotRegularFile, match=kind):
        read_regular(target, 100)


def test_too_large_and_missing_files_are_refused(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"x" * 101)
    with pytest.raises(FileTooLarge, match="larger than 100 bytes"):
        read_regular(path, 100)
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing.json", 100)
    assert path.read_bytes() == b"x" * 101  # only read
