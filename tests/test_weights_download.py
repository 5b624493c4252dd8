"""Tests of the weights cache and downloads: the cache folder, digests, fetching from a real
HTTP server on 127.0.0.1 (nothing is fetched from the internet), offline and manual files."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from instacolor.errors import DownloadError, WeightsError
from instacolor.weights import (
    WeightFile,
    WeightsEntry,
    cache_dir,
    get_entry,
    load_weights,
    sha256_file,
)
from instacolor.weights.download import fetch_verified
from instacolor.weights.loading import fetch
from tests.conftest import closed_port
from tests.weight_files import assert_state_equal, serve_siggraph8


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _siggraph_entry(file: WeightFile, *, name: str = "test-sig8", source: str = "download"):
    return WeightsEntry(
        name=name,
        architecture="siggraph17",
        width=8,
        files=(file,),
        source=source,
        license="BSD-2-Clause",
        mask_value=0.0,
        description="test entry",
        homepage="https://example.invalid/weights" if source == "manual" else "",
    )


@pytest.fixture
def served_siggraph8(http_root):
    """A width-8 siggraph17-format file on the local server, with its digest."""
    return serve_siggraph8(http_root)


# --------------------------------------------------------------------------- cache, fetch


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("INSTACOLOR_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("INSTACOLOR_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "instacolor"


def test_sha256_file_matches_hashlib(tmp_path):
    data = random.Random(2).randbytes(3 * 1000 + 7)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path, chunk=1000) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("digest", ["full", "prefix8", "upper"])
def test_fetch_downloads_verifies_and_caches(served_siggraph8, cache, digest):
    sha = {
        "full": served_siggraph8.sha256,
        "prefix8": served_siggraph8.sha256[:8],
        "upper": served_siggraph8.sha256.upper(),
    }[digest]
    file = WeightFile("siggraph17-test.pth", sha256=sha, url=served_siggraph8.url)
    entry = _siggraph_entry(file)
    path = fetch(entry, file, progress=False)
    assert path == cache / entry.name / file.name
    assert path.read_bytes() == served_siggraph8.path.read_bytes()
    assert _files_under(cache) == [path]  # no partial or .download leftovers
    assert served_siggraph8.http.server.requests == ["/sig8.pth"]

    # a second fetch uses the cache: the served file is gone and no request is made
    served_siggraph8.path.unlink()
    assert fetch(entry, file, progress=False) == path
    assert served_siggraph8.http.server.requests == ["/sig8.pth"]

    # and the cached file is a working siggraph17 checkpoint
    net = load_weights(path).net
    assert net.with_instances is False and net.width == 8
    assert_state_equal(net.full.state_dict(), served_siggraph8.state)


@pytest.mark.parametrize("digest", ["full", "prefix8"])
def test_fetch_with_wrong_sha256_saves_nothing(served_siggraph8, cache, digest):
    wrong = "0" * 64 if not served_siggraph8.sha256.startswith("0") else "f" * 64
    sha = wrong if digest == "full" else wrong[:8]
    file = WeightFile("siggraph17-test.pth", sha256=sha, url=served_siggraph8.url)
    entry = _siggraph_entry(file)
    with pytest.raises(DownloadError) as info:
        fetch(entry, file, progress=False)
    assert isinstance(info.value, WeightsError)
    message = str(info.value)
    assert served_siggraph8.url in message and sha in message
    assert _files_under(cache) == []
    # not cached: a corrected entry downloads again
    good = WeightFile(file.name, sha256=served_siggraph8.sha256, url=served_siggraph8.url)
    assert fetch(_siggraph_entry(good), good, progress=False).is_file()
    assert len(served_siggraph8.http.server.requests) == 2


def test_fetch_http_404_is_a_download_error(http_root, cache):
    url = f"{http_root.url}/absent.pth"
    file = WeightFile("absent.pth", sha256="deadbeef", url=url)
    with pytest.raises(DownloadError) as info:
        fetch(_siggraph_entry(file), file, progress=False)
    assert url in str(info.value)
    assert _files_under(cache) == []


def test_fetch_offline_names_target_and_url(cache):
    url = f"http://127.0.0.1:{closed_port()}/siggraph17-test.pth"
    file = WeightFile("siggraph17-test.pth", sha256="deadbeef", url=url)
    entry = _siggraph_entry(file)
    with pytest.raises(DownloadError) as info:
        fetch(entry, file, progress=False)
    message = str(info.value)
    assert str(cache / entry.name / file.name) in message
    assert url in message
    assert _files_under(cache) == []


def test_fetch_manual_file_names_expected_path(cache):
    file = WeightFile("manual.pth", sha256=None, url=None)
    entry = _siggraph_entry(file, name="test-manual", source="manual")
    with pytest.raises(WeightsError) as info:
        fetch(entry, file, progress=False)
    assert not isinstance(info.value, DownloadError)
    message = str(info.value)
    assert str(cache / "test-manual" / "manual.pth") in message
    assert "https://example.invalid/weights" in message
    assert _files_under(cache) == []


def test_registered_archive_entry_offline_names_expected_path(cache, monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}/checkpoints.zip"  # never the real host here
    monkeypatch.setenv("INSTACOLOR_INSTCOLORIZATION_URL", url)
    entry = get_entry("instcolorization-coco-ffs")
    with pytest.raises(DownloadError) as info:
        load_weights(entry.name)
    assert str(cache / entry.name) in str(info.value) and url in str(info.value)


def test_wrong_file_in_cache_is_caught_without_downloading(cache):
    entry = get_entry("siggraph17")
    (file,) = entry.files
    target = cache / entry.name / file.name
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the official siggraph17 weights")
    assert target.is_file()  # fetch returns early: nothing is downloaded
    with pytest.raises(WeightsError) as info:
        load_weights(entry.name)
    assert file.sha256 in str(info.value) and str(target) in str(info.value)
    assert target.read_bytes() == b"not the official siggraph17 weights"


def test_fetch_verified_returns_the_digest_and_checks_a_cached_file(served_siggraph8, cache):
    file = WeightFile(
        "siggraph17-test.pth", sha256=served_siggraph8.sha256, url=served_siggraph8.url
    )
    path, digest = fetch_verified("sig", file, "sig test", progress=False)
    assert digest == served_siggraph8.sha256 == sha256_file(path)  # hashed once, while fetched
    assert fetch_verified("sig", file, "sig test", progress=False) == (path, digest)
    with open(path, "r+b") as f:  # the cached copy is damaged later
        f.seek(100)
        f.write(b"\x00\xff")
    with pytest.raises(WeightsError, match=r"^sig test: sha256 .* does not match"):
        fetch_verified("sig", file, "sig test", progress=False)
    assert served_siggraph8.http.server.requests == ["/sig8.pth"]  # never fetched again
