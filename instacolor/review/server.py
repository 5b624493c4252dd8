"""Run the review app with uvicorn: in the foreground (the CLI) or in a thread (tests, tools).

A server on a loopback address (the default ``127.0.0.1``) answers reads without the
token (only this machine can reach it) and needs it for changes. Bound to any other
address it is reachable from the network: it says so on stderr, needs the token for
every request (the URL it prints carries it once), and still answers only to the
loopback names, its own address and the ``allowed_hosts`` names (``--allowed-host``).

Example:
    >>> from instacolor.review.server import ReviewServer  # doctest: +SKIP
    >>> with ReviewServer.start("colorized/", port=0) as server:  # doctest: +SKIP
    ...     print(server.url)
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import time
from pathlib import Path

from instacolor.errors import MissingDependencyError, UsageError

__all__ = ["ReviewServer", "build_state", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is this machine's loopback only."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
    input_roots: list[str] | None = None,
    max_pixels: int | None = None,
    queue: int = 4,
):
    """The :class:`~instacolor.review.app.ReviewState` of the batch in ``outdir``.

    ``input_roots``: folders the inputs may lie in (default: their deepest common
    folder); ``max_pixels``: largest input decoded (default: the batch default);
    ``queue``: re-colorizations admitted at once (503 beyond).
    """
    _import_server()
    from instacolor.io.archival import DEFAULT_MAX_PIXELS
    from instacolor.review.app import ReviewState
    from instacolor.review.engine import Engine
    from instacolor.review.state import Batch, default_reviewer

    batch = Batch(outdir, manifest, input_roots)
    engine = Engine(
        batch,
        colorizer=colorizer,
        weights=weights,
        working_size=working_size,
        detector=detector,
        device=device,
        display_size=display_size,
        max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
    )
    return ReviewState(batch, engine, reviewer or default_reviewer(), queue=queue)


class ReviewServer:
    """A uvicorn server for the review app on a bound socket.

    Args:
        state: the app's state (:func:`build_state`).
        host: the address to bind (127.0.0.1 by default: this machine only).
        port: the port (0: any free one).
        allowed_hosts: more ``Host`` names to answer to (the names peers use for this
            machine when ``host`` is not a loopback address).
        quiet: do not warn on stderr about a non-loopback address.
    """

    def __init__(
        self,
        state,
        host: str = "127.0.0.1",
        port: int = 8765,
        *,
        allowed_hosts: list[str] | None = None,
        quiet: bool = False,
    ) -> None:
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
        self.public = not is_loopback(host)
        own = [] if host in ("0.0.0.0", "::") else [f"[{host}]" if ":" in host else host]
        self.allowed_hosts = list(dict.fromkeys([*(allowed_hosts or []), *own]))
        app = create_app(state, allowed_hosts=self.allowed_hosts or ["127.0.0.1"],
                         require_token=self.public)  # fmt: skip
        if self.public and not quiet:
            print(self.warning(), file=sys.stderr, flush=True)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address (with the token when the server is not on loopback)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.host in ("0.0.0.0", "::"):
            host = self.allowed_hosts[0] if self.allowed_hosts else "127.0.0.1"
        query = f"?token={self.state.token}" if self.public else ""
        return f"http://{host}:{self.port}/{query}"

    def warning(self) -> str:
        """What a non-loopback server says on stderr when it starts."""
        names = ", ".join(["127.0.0.1", "localhost", "[::1]", *self.allowed_hosts])
        return (
            f"instacolor: WARNING: the review server listens on {self.host}:{self.port}, "
            "reachable from other machines, over plain HTTP (no encryption: use it on a "
            "trusted network or behind an HTTPS proxy). Every request needs the token in the "
            f"address printed below; keep it secret. Host names answered: {names} (add "
            "others with --allowed-host NAME)."
        )

    def run(self) -> None:
        """Serve in this thread until Ctrl-C."""
        self.server.run(sockets=[self.socket])

    @classmethod
    def start(cls, outdir: str | os.PathLike | Path, *, host="127.0.0.1", port=0, **options):
        """Build the state for ``outdir`` and serve it in a background thread."""
        hosts, quiet = options.pop("allowed_hosts", None), options.pop("quiet", False)
        state = build_state(outdir, **options)
        server = cls(state, host=host, port=port, allowed_hosts=hosts, quiet=quiet)
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
