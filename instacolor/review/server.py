"""Run the review app with uvicorn: in the foreground (the CLI) or in a thread (tests, tools).

Example:
    >>> from instacolor.review.server import ReviewServer  # doctest: +SKIP
    >>> with ReviewServer.start("colorized/", port=0) as server:  # doctest: +SKIP
    ...     print(server.url)
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from instacolor.errors import MissingDependencyError, UsageError

__all__ = ["ReviewServer", "build_state"]


def _import_server():
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError(
            f"instacolor review needs Starlette and uvicorn, which are not installed ({exc}); "
            'install them with: pip install "instacolor[review]"'
        ) from exc
    return uvicorn


def build_state(
    outdir: str | os.PathLike,
    *,
    manifest: str | os.PathLike | None = None,
    reviewer: str | None = None,
    weights: str | None = None,
    working_size: int | None = None,
    detector: str | None = None,
    device: str = "cpu",
    display_size: int = 768,
    colorizer=None,
):
    """The :class:`~instacolor.review.app.ReviewState` of the batch in ``outdir``."""
    _import_server()
    from instacolor.review.app import ReviewState
    from instacolor.review.engine import Engine
    from instacolor.review.state import Batch, default_reviewer

    batch = Batch(outdir, manifest)
    engine = Engine(
        batch,
        colorizer=colorizer,
        weights=weights,
        working_size=working_size,
        detector=detector,
        device=device,
        display_size=display_size,
    )
    return ReviewState(batch, engine, reviewer or default_reviewer())


class ReviewServer:
    """A uvicorn server for the review app on a bound socket.

    Args:
        state: the app's state (:func:`build_state`).
        host: the address to bind (127.0.0.1 by default: this machine only).
        port: the port (0: any free one).
    """

    def __init__(self, state, host: str = "127.0.0.1", port: int = 8765) -> None:
        uvicorn = _import_server()
        from instacolor.review.app import create_app

        self.state = state
        self.socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
            self.socket.listen(128)  # connections wait in the queue until uvicorn runs
        except OSError as exc:
            self.socket.close()
            raise UsageError(
                f"cannot listen on {host}:{port} ({exc}); pass another --port or --host"
            ) from exc
        self.host, self.port = host, self.socket.getsockname()[1]
        hosts = sorted({host, "127.0.0.1", "localhost", "[::1]"})
        app = create_app(state, allowed_hosts=hosts if host not in ("0.0.0.0", "::") else None)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}/"

    def run(self) -> None:
        """Serve in this thread until Ctrl-C."""
        self.server.run(sockets=[self.socket])

    @classmethod
    def start(cls, outdir: str | os.PathLike | Path, *, host="127.0.0.1", port=0, **options):
        """Build the state for ``outdir`` and serve it in a background thread."""
        server = cls(build_state(outdir, **options), host=host, port=port)
        server.thread = threading.Thread(target=server.run, daemon=True)
        server.thread.start()
        deadline = time.monotonic() + 30
        while not server.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return server

    def stop(self) -> None:
        """Stop a server started with :meth:`start`."""
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.socket.close()

    def __enter__(self) -> ReviewServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
