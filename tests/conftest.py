"""Shared fixtures and helpers: a throw-away weights cache, a real local HTTP server,
a synthetic L plane for detectors, the data folder of tests marked ``needs_data``.

Tests marked ``@pytest.mark.needs_data("coco128", ...)`` read real photos from the folder
named by ``$INSTACOLOR_DATA`` (holding ``coco128/``, ``train/``, ``eval/kodak24/``) through
the ``data_dir`` fixture. Unset, they are skipped with a reason that names the variable;
set to a folder without one of the named subfolders, they fail saying which.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from instacolor.color import gray_to_l


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("INSTACOLOR_CACHE", str(root))
    return root


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path / "served"``."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(
            root=served, url=f"http://127.0.0.1:{server.server_address[1]}", server=server
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def bright_box_light(h: int, w: int, seed: int = 0) -> np.ndarray:
    """``(h, w)`` L plane: a bright box on a darker, slightly noisy background."""
    rng = np.random.default_rng(seed)
    gray = np.full((h, w), 0.3, np.float32)
    gray[20:70, 30:90] = 0.8
    gray += rng.normal(0, 0.02, (h, w)).astype(np.float32)
    return gray_to_l(torch.from_numpy(gray.clip(0, 1))).numpy()


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """Empty caches, and every download refused at once (a closed proxy port)."""
    monkeypatch.setenv("INSTACOLOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)


DATA_ENV = "INSTACOLOR_DATA"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a ``needs_data`` test without ``$INSTACOLOR_DATA``; fail it if a folder is missing."""
    marker = item.get_closest_marker("needs_data")
    if marker is None:
        return
    folders = ", ".join(f"{folder}/" for folder in marker.args)
    root = os.environ.get(DATA_ENV)
    if not root:
        pytest.skip(f"needs data: set {DATA_ENV} to a folder holding {folders}")
    missing = [f"{folder}/" for folder in marker.args if not (Path(root) / folder).is_dir()]
    if missing:
        pytest.fail(
            f"{DATA_ENV}={root!r} holds no {', '.join(missing)}; expected a folder holding "
            f"{folders} (unset {DATA_ENV} to skip the tests that need it)",
            pytrace=False,
        )


@pytest.fixture
def data_dir(request: pytest.FixtureRequest) -> Path:
    """The folder ``$INSTACOLOR_DATA``, for tests marked ``needs_data``."""
    if request.node.get_closest_marker("needs_data") is None:
        raise pytest.UsageError(f"{request.node.name} uses data_dir without a needs_data mark")
    return Path(os.environ[DATA_ENV])


@pytest.fixture
def torch_threads():
    """``torch_threads(n)`` sets torch's intra-op threads for the test; the caller's number
    is restored afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)
