"""Which files the review app may read and write: the batch's folders, nothing else.

The manifest is data, not authority: a record may name any path (a hostile or damaged
manifest, an output replaced by a symbolic link). Before the app reads or writes a file
named by a record, :class:`Folders` resolves it and refuses it with an
:class:`UntrustedPath` (the app answers 403) unless:

* an **output** is a regular file (or does not exist yet) whose folder, resolved, lies
  inside the resolved OUTDIR, whose name has an image suffix, which is not itself a
  symbolic link, and which is not the manifest or the review log;
* an **input** (only ever read) resolves to a regular (or missing) file inside one of the input
  roots: the ``--input-root`` folders, by default the deepest folder holding every
  input the manifest names (refused when that is the file-system root: pass
  ``--input-root``).

What this does not stop: a person who can write into OUTDIR or the input folders while
the app runs can swap a checked file between the check and its use; such a person can
change the outputs directly anyway.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> folders = Folders(out, [out / "in" / "a.png"])
    >>> folders.output(out / "a.png") == (out / "a.png").resolve()
    True
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from instacolor.errors import InputError

__all__ = ["Folders", "UntrustedPath"]

_IMAGE_SUFFIXES = frozenset([".png", ".tif", ".tiff", ".jpg", ".jpeg", ".jpe"])


class UntrustedPath(InputError):
    """A manifest record names a file outside the batch's folders, or a symbolic link."""


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _common_folder(inputs: list[Path]) -> Path:
    try:
        return Path(os.path.commonpath([str(p.parent) for p in inputs]))
    except ValueError:  # nothing in common (relative and absolute mixed)
        return Path("/")


class Folders:
    """The batch's folders and the checks of every path read or written.

    Args:
        outdir: the batch's output folder.
        inputs: the input paths the manifest names (for the default input root).
        input_roots: folders inputs may lie in (default: the deepest common folder of
            ``inputs``).
        internal: files inside OUTDIR that are never an output (manifest, review log).
    """

    def __init__(
        self,
        outdir: Path,
        inputs: Iterable[Path],
        input_roots: Iterable[str | os.PathLike] | None = None,
        internal: Iterable[Path] = (),
    ) -> None:
        self.outdir = Path(outdir).resolve()
        roots = [Path(r) for r in input_roots or ()]
        if not roots:
            named = [Path(p) for p in inputs]
            roots = [_common_folder(named)] if named else []
        self.input_roots = [r.resolve() for r in roots]
        self.internal = {Path(p).resolve() for p in internal}

    def output(self, path: Path | None) -> Path:
        """``path`` resolved, if the app may read and replace it as an output.

        Raises:
            UntrustedPath: outside OUTDIR, a symbolic link, not a regular file, not an
                image name, or the manifest or review log.
        """
        if path is None:
            raise UntrustedPath("this image has no output in the manifest")
        path = Path(path)
        name = path.name
        if not path.is_absolute() or name in ("", ".", ".."):
            raise UntrustedPath("the manifest names an output that is not an absolute file path")
        folder = path.parent.resolve()
        if not _inside(folder, self.outdir):
            raise UntrustedPath(
                "the manifest names an output outside OUTDIR; the app reads and writes only "
                "files inside the batch's output folder"
            )
        target = folder / name
        try:
            info = os.lstat(target)
        except FileNotFoundError:
            info = None
        except OSError as exc:
            raise UntrustedPath(f"the output cannot be checked ({type(exc).__name__})") from None
        if info is not None and stat.S_ISLNK(info.st_mode):
            raise UntrustedPath(
                "the output is a symbolic link; the app serves and replaces only regular files "
                "(replace the link by the colorized file, or colorize again)"
            )
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise UntrustedPath("the output is not a regular file")
        if Path(name).suffix.lower() not in _IMAGE_SUFFIXES or target in self.internal:
            raise UntrustedPath(
                "the manifest names an output that is not a PNG, TIFF or JPEG image file"
            )
        return target

    def input(self, path: Path) -> Path:
        """``path`` resolved, if the app may read it as an input (it never writes one).

        Raises:
            UntrustedPath: outside the input roots, or not a regular file.
        """
        if not self.input_roots or self.input_roots == [Path("/")]:
            raise UntrustedPath(
                "the manifest's inputs have no folder in common but the file-system root; "
                "restart the review with --input-root FOLDER for the folders of the scans"
            )
        resolved = Path(path).resolve()
        if not any(_inside(resolved, root) for root in self.input_roots):
            raise UntrustedPath(
                "the manifest names an input outside the input folders "
                f"({', '.join(map(str, self.input_roots))}); pass --input-root to allow "
                "another folder"
            )
        if resolved.exists() and not resolved.is_file():
            raise UntrustedPath("the input is not a regular file")
        return resolved  # a missing input is reported by the reader that needs it
