"""Weights published as a zip archive: InstColorization's ``checkpoints.zip`` on Google Drive.

The reference publishes its checkpoints as one ``checkpoints.zip`` on Google Drive
(file id :data:`INSTCOLORIZATION_GDRIVE_ID`, the id in its ``download.py``), with no
sha256. :func:`fetch_archive` downloads it in one call and installs the files of one
folder of the archive (``coco_finetuned_mask_256_ffs``) into the cache:

* Google Drive asks a browser to confirm downloads too large to scan for viruses; the
  optional package `gdown <https://github.com/wkentaro/gdown>`_ handles that step
  (``pip install 'instacolor[official]'``). Other URLs (a mirror) are fetched plainly.
* The archive is downloaded and its files are extracted into a hidden temporary folder
  of the cache that is renamed into place only when complete (zip CRCs checked), so an
  interrupted download or a wrong archive never leaves a half folder.
* As no upstream digest exists, the sha256 of every file is recorded on first download
  (or on first use of a folder unzipped by hand) in ``<cache>/<name>.sha256.json``
  beside the folder, and checked on every later load: a changed file is refused.

The download URL can be replaced by a mirror of ``checkpoints.zip`` through the
environment variable the entry names (:data:`INSTCOLORIZATION_URL_ENV`,
``$INSTACOLOR_INSTCOLORIZATION_URL``).

Example:
    >>> from instacolor.weights.official import INSTCOLORIZATION_ARCHIVE
    >>> INSTCOLORIZATION_ARCHIVE.member
    'coco_finetuned_mask_256_ffs'
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import torch

from instacolor.errors import DownloadError, MissingDependencyError, WeightsError
from instacolor.weights.download import cache_dir, sha256_file

__all__ = [
    "INSTCOLORIZATION_ARCHIVE",
    "INSTCOLORIZATION_GDRIVE_ID",
    "INSTCOLORIZATION_URL_ENV",
    "RECORDED_DIGEST_NOTE",
    "ArchiveSource",
    "digests_path",
    "fetch_archive",
    "read_recorded_digests",
]

#: Google Drive id of InstColorization's ``checkpoints.zip`` (its ``download.py``).
INSTCOLORIZATION_GDRIVE_ID = "1Xb-DKAA9ibCVLqm8teKd1MWk6imjwTBh"
#: Environment variable that replaces the archive URL (a mirror of ``checkpoints.zip``).
INSTCOLORIZATION_URL_ENV = "INSTACOLOR_INSTCOLORIZATION_URL"
#: How files whose digest is recorded on first download are described.
RECORDED_DIGEST_NOTE = "digest recorded on first download (no upstream sha256)"
_GDRIVE_HOSTS = ("drive.google.com", "docs.google.com")


@dataclass(frozen=True)
class ArchiveSource:
    """A zip archive one folder of which holds a weights entry's files.

    Attributes:
        url: official download URL of the archive (a Google Drive ``uc?id=`` link or
            any http(s) URL).
        member: name of the folder inside the archive whose files are installed (at
            any depth: ``checkpoints/<member>/<file>`` is found).
        archive_name: the archive's file name, for messages.
        url_env: environment variable that replaces ``url`` when set, or None.
    """

    url: str
    member: str
    archive_name: str = "archive.zip"
    url_env: str | None = None

    def resolved_url(self) -> str:
        """``$url_env`` when it is set and non-empty, else :attr:`url`."""
        return (os.environ.get(self.url_env) if self.url_env else None) or self.url


INSTCOLORIZATION_ARCHIVE = ArchiveSource(
    url=f"https://drive.google.com/uc?id={INSTCOLORIZATION_GDRIVE_ID}",
    member="coco_finetuned_mask_256_ffs",
    archive_name="checkpoints.zip",
    url_env=INSTCOLORIZATION_URL_ENV,
)


def digests_path(name: str) -> Path:
    """Where the digests recorded for entry ``name`` live: beside its cache folder."""
    return cache_dir() / f"{name}.sha256.json"


def read_recorded_digests(name: str) -> dict[str, str] | None:
    """The ``file -> sha256`` recorded for entry ``name``, or None if none is recorded.

    Raises:
        WeightsError: the digest file exists but is not the JSON instacolor writes.
    """
    path = digests_path(name)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        problem = None
    except (OSError, ValueError) as exc:  # ValueError: bad UTF-8 or JSON
        record, problem = None, str(exc)
    digests = record.get("sha256") if isinstance(record, dict) else None
    valid = isinstance(digests, dict) and all(
        isinstance(k, str) and isinstance(v, str) and len(v) == 64 for k, v in digests.items()
    )
    if not valid:
        raise WeightsError(
            f"weights {name!r}: expected recorded digests at {path} (JSON with a 'sha256' "
            f"object of file -> 64 hex digits), received an unreadable file "
            f"({problem or 'no such object'}); delete it to record the digests of the files "
            "now in the folder again"
        )
    return digests


def fetch_archive(
    name: str, source: ArchiveSource, files: list[str], *, progress: bool = True
) -> tuple[Path, dict[str, str]]:
    """``(folder, file -> sha256)`` of an archive entry, downloaded and installed if missing.

    A complete folder in the cache is checked against the digests recorded for it (and
    they are recorded now if the folder was unzipped by hand). A missing folder is
    downloaded, extracted and installed atomically, and its digests recorded.

    Args:
        name: the entry's name: its cache folder is ``cache_dir() / name``.
        source: the archive and the folder in it that holds ``files``.
        files: file names the folder must hold.
        progress: show a download progress bar.

    Raises:
        WeightsError: a cached file differs from its recorded digest, or the folder
            exists but lacks files.
        DownloadError: the download failed (offline, refused, not a zip), or the archive
            has no folder ``source.member`` holding ``files``; nothing is left behind.
        MissingDependencyError: the URL is Google Drive's and gdown is not installed.
    """
    folder = cache_dir() / name
    if not folder.exists():
        _download_and_install(name, source, files, progress=progress)
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise WeightsError(
            f"weights {name!r}: expected {', '.join(files)} in {folder}, missing "
            f"{', '.join(missing)}; delete the folder to download {source.archive_name} "
            f"again, or copy the files of its {source.member} folder there"
        )
    return folder, _checked_digests(name, folder, files, source)


def _checked_digests(
    name: str, folder: Path, files: list[str], source: ArchiveSource
) -> dict[str, str]:
    """Digests of ``files``, checked against the recorded ones (recorded if none are)."""
    digests = {f: sha256_file(folder / f) for f in files}
    recorded = read_recorded_digests(name)
    if recorded is None:
        _record(name, digests, source)
        return digests
    for file, digest in digests.items():
        expected = recorded.get(file)
        if expected is not None and expected != digest:
            raise WeightsError(
                f"weights {name!r}: {folder / file} has changed since its digest was recorded "
                f"on first download: expected sha256 {expected}, received {digest}. Delete "
                f"{folder} and {digests_path(name)} to download it again (or, if you replaced "
                f"the file on purpose, delete {digests_path(name)} to record the new digests)"
            )
    if any(file not in recorded for file in digests):
        _record(name, {**recorded, **digests}, source)
    return digests


def _record(name: str, digests: dict[str, str], source: ArchiveSource) -> None:
    """Write the digests file atomically (temporary file, then rename)."""
    path = digests_path(name)
    payload = {
        "name": name,
        "source": source.resolved_url(),
        "archive": source.archive_name,
        "member": source.member,
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": RECORDED_DIGEST_NOTE,
        "sha256": dict(sorted(digests.items())),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _manual_steps(name: str, source: ArchiveSource, url: str) -> str:
    folder = cache_dir() / name
    return (
        f"download {source.archive_name} from {url} in a browser, unzip it and put the files "
        f"of its {source.member} folder into {folder} (or pass that folder as weights=)"
    )


def _download_and_install(
    name: str, source: ArchiveSource, files: list[str], *, progress: bool
) -> None:
    """Download the archive and rename its ``member`` folder to ``cache_dir() / name``."""
    url = source.resolved_url()
    folder = cache_dir() / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".download", dir=folder.parent))
    try:
        archive = work / source.archive_name
        _download(url, archive, name, source, progress=progress)
        stage = work / name
        digests = _extract(archive, stage, files, name, source, url)
        try:
            os.rename(stage, folder)
        except OSError:
            if not all((folder / f).is_file() for f in files):
                raise
            return  # another process installed the folder meanwhile: keep theirs
        _record(name, digests, source)  # a fresh download replaces any stale record
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _download(url: str, target: Path, name: str, source: ArchiveSource, *, progress: bool) -> None:
    gdown = _import_gdown(name, source, url) if urlparse(url).hostname in _GDRIVE_HOSTS else None
    try:
        if gdown is not None:  # answers Drive's "too large to scan" confirmation page
            gdown.download(url=url, output=str(target), quiet=not progress, use_cookies=False)
        else:
            torch.hub.download_url_to_file(url, str(target), progress=progress)
    except Exception as exc:  # requests/urllib connection, HTTP and gdown errors
        raise DownloadError(
            f"weights {name!r}: could not download {source.archive_name} from {url} "
            f"({type(exc).__name__}: {str(exc)[:300]}); nothing was saved. If this machine "
            f"is offline, {_manual_steps(name, source, url)}"
        ) from exc


def _import_gdown(name: str, source: ArchiveSource, url: str):
    try:
        import gdown
    except ImportError as exc:
        raise MissingDependencyError(
            f"weights {name!r}: downloading {source.archive_name} from Google Drive needs the "
            "optional package gdown (it answers Drive's confirmation step for large files), "
            "which is not installed: expected it importable, received ImportError. Run pip "
            f"install 'instacolor[official]' (or pip install gdown), or "
            f"{_manual_steps(name, source, url)}"
        ) from exc
    return gdown


def _extract(
    archive: Path, stage: Path, files: list[str], name: str, source: ArchiveSource, url: str
) -> dict[str, str]:
    """Copy ``member/<file>`` of the archive into ``stage``; the files' sha256."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = {}
            for info in zf.infolist():
                path = PurePosixPath(info.filename)
                if len(path.parts) >= 2 and path.parts[-2] == source.member:
                    members.setdefault(path.name, info)
            missing = [f for f in files if f not in members]
            if missing:
                tops = sorted({PurePosixPath(n).parts[0] for n in zf.namelist()})[:10]
                raise DownloadError(
                    f"weights {name!r}: expected {source.archive_name} from {url} to hold a "
                    f"folder {source.member}/ with {', '.join(files)}; it lacks "
                    f"{', '.join(missing)} (archive holds {tops}); nothing was saved. Check "
                    f"the URL (${source.url_env} if set) or {_manual_steps(name, source, url)}"
                )
            stage.mkdir()
            for file in files:
                with zf.open(members[file]) as src, open(stage / file, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)  # reading checks the zip CRC
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise DownloadError(
            f"weights {name!r}: expected {source.archive_name} from {url} to be a zip "
            f"archive, received a file that could not be unzipped ({exc}; Google Drive serves "
            f"an HTML page when its download quota is exceeded); nothing was saved. Retry "
            f"later, or {_manual_steps(name, source, url)}"
        ) from exc
    return {file: sha256_file(stage / file) for file in files}
