"""What the review app knows on disk: the batch's manifest and the append-only review log.

* :class:`Batch` reads ``OUTDIR/manifest.jsonl`` (the last record of each input wins)
  into :class:`Item` values numbered 0..N-1 by input path. Those numbers are the only
  names the web app accepts: no path from a request ever reaches the file system.
* :class:`ReviewLog` is ``OUTDIR/review.jsonl``: one JSON line per decision (image,
  output, output sha256, decision, comment, hints, time, reviewer), appended under an
  exclusive lock and fsynced, never rewritten. The last decision per output wins; a
  decision about an output that has changed since (a later "apply") no longer counts.
* :func:`export_accepted` lists the outputs whose last decision is ``accept`` and whose
  file is still the one accepted.

Example:
    >>> import tempfile, pathlib
    >>> log = ReviewLog(pathlib.Path(tempfile.mkdtemp()) / "review.jsonl")
    >>> log.last() == {}
    True
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from instacolor.errors import InputError, UsageError
from instacolor.review.trust import Folders, UntrustedPath
from instacolor.weights import sha256_file

__all__ = ["DECISIONS", "Batch", "Item", "ReviewLog", "default_reviewer", "export_accepted"]

#: Decisions a reviewer can take.
DECISIONS = ("accept", "reject", "needs-work")
_COMMENT_MAX = 2000


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_reviewer() -> str:
    """The OS user name (the reviewer when ``--reviewer`` is not given)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class Item:
    """One input of the batch and its last manifest record.

    Attributes:
        index: the item's number in the app (its only name in URLs).
        record: the last manifest record of this input (a JSON object).
    """

    index: int
    record: dict[str, Any]
    _digest: tuple[float, int, str] | None = field(default=None, repr=False)
    folders: Folders | None = field(default=None, repr=False)

    @property
    def input(self) -> Path:
        """Absolute path of the input scan (only read, never written)."""
        return Path(self.record["input"])

    @property
    def output(self) -> Path | None:
        """Absolute path of the output, or None when the record has none."""
        out = self.record.get("output")
        done = self.record.get("status") in ("done", "skipped-complete")
        return Path(out) if isinstance(out, str) and out and "\0" not in out and done else None

    @property
    def status(self) -> str:
        """The manifest status (``done``, ``failed``, ...)."""
        return str(self.record.get("status"))

    def checked(self) -> tuple[Path, Path | None]:
        """``(input, output)`` once both are checked against the batch's folders.

        The paths are those of the manifest (they key the review log); what they name
        was resolved and found inside the batch's folders just now.

        Raises:
            UntrustedPath: the record names a file outside them, or a symbolic link as
                its output (see :mod:`instacolor.review.trust`).
        """
        if self.folders is not None:
            self.folders.input(self.input)
            if self.output is not None:
                self.folders.output(self.output)
        return self.input, self.output

    def refusal(self) -> str | None:
        """Why the app refuses this item's files now, or None."""
        try:
            self.checked()
        except UntrustedPath as exc:
            return str(exc)
        return None

    def output_sha256(self) -> str | None:
        """sha256 of the output file as it is now (cached by mtime and size), or None.

        None also when the output is outside OUTDIR or a symbolic link (never hashed).
        """
        path = self.output
        if path is not None and self.folders is not None:
            try:
                path = self.folders.output(path)
            except UntrustedPath:
                return None
        try:
            stat = path.stat() if path is not None else None
        except OSError:
            stat = None
        if stat is None:
            return None
        key = (stat.st_mtime, stat.st_size)
        if self._digest is None or self._digest[:2] != key:
            self._digest = (*key, sha256_file(path))
        return self._digest[2]


class Batch:
    """The items of a batch, read from its manifest.

    Args:
        outdir: the batch's output folder.
        manifest: the manifest path (default ``outdir/manifest.jsonl``).

    Raises:
        UsageError: the folder has no readable manifest or it names no input.
    """

    def __init__(
        self,
        outdir: str | os.PathLike,
        manifest: str | os.PathLike | None = None,
        input_roots: list[str | os.PathLike] | None = None,
    ):
        self.outdir = Path(outdir).absolute()
        self.manifest = Path(manifest).absolute() if manifest else self.outdir / "manifest.jsonl"
        self.input_roots = input_roots
        self.folders: Folders | None = None
        if not self.manifest.is_file():
            raise UsageError(
                f"{self.manifest}: expected the manifest.jsonl of an instacolor batch, found "
                "no file; run `instacolor colorize INPUTS -o OUTDIR` first or pass --manifest"
            )
        self.items: list[Item] = []
        self.reload()
        if not self.items:
            raise UsageError(f"{self.manifest}: the manifest names no input; nothing to review")
        self.folders = Folders(
            self.outdir,
            [item.input for item in self.items],
            input_roots,
            internal=[self.manifest, self.outdir / "review.jsonl"],
        )
        for item in self.items:
            item.folders = self.folders

    def reload(self) -> None:
        """Read the manifest again (after an apply); item numbers stay those of the inputs.

        An input's record is its last one, except that a failure after a success keeps
        the success: a failed re-run does not remove the output it left in place.
        """
        last: dict[str, dict] = {}
        with self.manifest.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except (ValueError, RecursionError):  # JSONDecodeError, or too deep
                    continue  # a line cut short by a kill
                if not isinstance(record, dict) or not isinstance(record.get("input"), str):
                    continue
                if not record["input"] or "\0" in record["input"]:
                    continue  # no file can have this name
                before = last.get(record["input"])
                if record.get("status") == "failed" and before and before.get("output_sha256"):
                    continue  # a failed re-run (an apply) left the earlier output as it was
                last[record["input"]] = record
        known = {item.record["input"]: item for item in self.items}
        items = []
        for index, name in enumerate(sorted(last)):
            item = known.get(name) or Item(index, last[name], folders=self.folders)
            item.index, item.record = index, last[name]
            items.append(item)
        self.items = items

    def item(self, index: int) -> Item | None:
        """The item numbered ``index``, or None."""
        return self.items[index] if 0 <= index < len(self.items) else None


class ReviewLog:
    """The append-only review log ``OUTDIR/review.jsonl``.

    Args:
        path: the log file (created on the first decision).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _open(self, flags: int, mode: str):
        """The log opened without following a symbolic link (UntrustedPath if it is one)."""
        try:
            fd = os.open(self.path, flags | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise UntrustedPath(
                f"{self.path.name} is a symbolic link; the review log must be a regular file "
                "in OUTDIR (remove the link)"
            ) from None
        return os.fdopen(fd, mode, encoding="utf-8")

    def read(self) -> list[dict[str, Any]]:
        """Every decision in the log, oldest first (lines cut short are skipped)."""
        entries = []
        try:
            with self._open(os.O_RDONLY, "r") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                    except (ValueError, RecursionError):  # JSONDecodeError, or too deep
                        continue
                    if isinstance(entry, dict) and isinstance(entry.get("output"), str):
                        entries.append(entry)
        except (FileNotFoundError, UntrustedPath):  # a symbolic link is not read
            pass
        return entries

    def check(self) -> None:
        """Raise UntrustedPath if the log is a symbolic link (before anything is written)."""
        if self.path.is_symlink():
            self._open(os.O_RDONLY, "r").close()  # raises, with the reason

    def last(self) -> dict[str, dict[str, Any]]:
        """The last decision per output path."""
        return {entry["output"]: entry for entry in self.read()}

    def append(
        self,
        item: Item,
        decision: str,
        *,
        reviewer: str,
        comment: str = "",
        hints: dict | None = None,
        output_sha256: str | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Append one decision (locked, flushed, fsynced) and return it.

        Raises:
            InputError: an unknown decision, a comment that is not a short string, or an
                item without output.
        """
        if decision not in DECISIONS:
            raise InputError(f"decision: expected one of {DECISIONS}, received {decision!r}")
        if not isinstance(comment, str) or len(comment) > _COMMENT_MAX:
            raise InputError(
                f"comment: expected text of at most {_COMMENT_MAX} characters, received "
                f"{type(comment).__name__} {str(comment)[:40]!r}...; shorten it"
            )
        if item.output is None:
            raise InputError(
                f"image {item.index}: expected a colorized output to decide on, the manifest "
                f"says {item.status!r}"
            )
        entry = {
            "image": str(item.input),
            "output": str(item.output),
            "output_sha256": output_sha256 or item.output_sha256(),
            "decision": decision,
            "comment": comment,
            "hints": hints,
            "time": _now(),
            "reviewer": reviewer,
        }
        if note:
            entry["note"] = note
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._open(os.O_WRONLY | os.O_APPEND | os.O_CREAT, "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return entry


def current_decision(item: Item, last: dict[str, dict]) -> dict[str, Any] | None:
    """The item's last decision, marked ``stale`` when the output changed since."""
    if item.output is None:
        return None
    entry = last.get(str(item.output))
    if entry is None:
        return None
    return {**entry, "stale": entry.get("output_sha256") != item.output_sha256()}


def export_accepted(batch: Batch, log: ReviewLog, target: str | os.PathLike) -> list[str]:
    """Write the accepted outputs (one absolute path a line, UTF-8) to ``target``.

    An output counts when its last decision is ``accept`` and the file's sha256 is still
    the one recorded with that decision.

    Returns:
        The paths written.
    """
    last = log.last()
    accepted = []
    for item in batch.items:
        decision = current_decision(item, last)
        if decision and decision["decision"] == "accept" and not decision["stale"]:
            accepted.append(str(item.output))
    Path(target).write_text("".join(f"{p}\n" for p in accepted), encoding="utf-8")
    return accepted
