"""The ``instacolor`` command, run for real as ``python -m instacolor`` in a subprocess.

Folders of small images are made here; the untrained compact weights at working size
64 keep each run to a few seconds, and every download is refused at once (empty
caches, proxies pointing at a closed port). Checked: valid files processed, each bad
file reported on one stderr line and in the manifest while the batch goes on, inputs
byte-identical, 16-bit kept, metadata and provenance carried, kill + resume, exit codes.
``--list`` files: ``tests/test_cli_list.py``; SIGTERM and Ctrl-C:
``tests/test_cli_signals.py``; the batch modules themselves: ``tests/test_batch_*.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import ExifTags, Image

from instacolor import __version__
from instacolor.batch.manifest import read_successes
from instacolor.io.archival import read_provenance
from tests.cli_helpers import (
    FAST,
    by_input_name,
    cli_env,
    file_hashes,
    gray_ramp,
    read_manifest,
    run_cli,
    write_png,
)

TITLE_XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
    b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title><rdf:Alt><rdf:li '
    b'xml:lang="x-default">Grandma, 1921</rdf:li></rdf:Alt></dc:title></rdf:Description>'
    b"</rdf:RDF></x:xmpmeta>"
)


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """Environment of the CLI: empty caches, every download refused at once."""
    return cli_env(tmp_path)


# ----------------------------------------------------------------------------- fixtures


def _tiff16_with_metadata(path: Path) -> Path:
    exif = Image.Exif()
    exif[ExifTags.Base.Artist] = "County archive"
    exif[700] = TITLE_XMP
    ramp = (np.arange(48 * 64, dtype=np.int64) * 65535 // (48 * 64 - 1)).astype(np.uint16)
    Image.fromarray(ramp.reshape(48, 64)).save(path, exif=exif.tobytes(), dpi=(300, 300))
    return path


def _mixed_folder(root: Path) -> tuple[Path, Path]:
    """Valid, colour and bad inputs; returns (input folder, list file)."""
    src = root / "in"
    write_png(src / "gray8.png", gray_ramp())
    (src / "sub").mkdir()
    _tiff16_with_metadata(src / "sub" / "scan16.tif")
    Image.fromarray(gray_ramp(seed=2)).save(src / "sub" / "photo.jpg", quality=90)
    colour = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(colour).save(src / "colour.png")
    png = (src / "gray8.png").read_bytes()
    (src / "empty.png").write_bytes(b"")
    (src / "notes.png").write_bytes(b"scanned 1921, box 4\n")
    (src / "truncated.png").write_bytes(png[: len(png) // 2])
    (src / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 40)
    bmp = io.BytesIO()
    Image.fromarray(gray_ramp()).save(bmp, format="BMP")
    (src / "old.bmp").write_bytes(bmp.getvalue())
    write_png(src / "huge.png", np.zeros((120, 120), np.uint8))  # over --max-pixels 10000
    (src / "gone.png").symlink_to(src / "no-such-file.png")  # a broken link
    write_png(src / "blocked" / "inner.png", gray_ramp(seed=3))  # its output folder is a file
    (root / "dir.png").mkdir()  # a folder named like an image, listed as a file
    listing = root / "list.txt"
    listing.write_text(f"{root / 'dir.png'}\n\n{src / 'gray8.png'}\n")
    return src, listing


# ----------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_version_and_models(env):
    version = run_cli(env, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"instacolor {__version__}"
    models = run_cli(env, "models")
    assert models.returncode == 0, models.stderr
    assert "instacolor-w16-v4 [default]: present" in models.stdout
    assert "instacolor-untrained-w16: available" in models.stdout
    assert "siggraph17: not cached" in models.stdout and "licence: BSD-2-Clause" in models.stdout
    assert str(Path(env["INSTACOLOR_CACHE"])) in models.stdout
    assert "decoding: regression (no class head)" in models.stdout  # v4's head is untrained
    official = models.stdout.split("instcolorization-coco-ffs: ")[1].split("siggraph17")[0]
    assert "digest recorded on first download (no upstream sha256)" in official


@pytest.mark.slow
def test_output_into_a_closed_pipe_ends_quietly(env):
    """``instacolor models | head -1``: the reader leaves; no error, no traceback."""
    read, write = os.pipe()
    os.close(read)  # every write of the command meets a closed pipe
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "instacolor", "models"],
            stdout=write, stderr=subprocess.PIPE, env=env, text=True, timeout=300,
        )  # fmt: skip
    finally:
        os.close(write)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""


@pytest.mark.slow
def test_batch_goes_on_past_every_bad_input_and_never_touches_inputs(tmp_path, env):
    src, listing = _mixed_folder(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "blocked").write_text("a file where an output folder should go")
    before = file_hashes(src)
    run = run_cli(env, "colorize", src, "-o", out, "--list", listing, "--max-pixels", 10000, *FAST)
    assert run.returncode == 1, run.stderr
    records = read_manifest(out)
    status = {n: r["status"] for n, r in by_input_name(records).items()}
    bad = ["empty.png", "notes.png", "truncated.png", "corrupt.jpg", "old.bmp", "huge.png"]
    bad += ["gone.png", "inner.png", "dir.png"]
    assert status == {
        "gray8.png": "done",
        "scan16.tif": "done",
        "photo.jpg": "done",
        "colour.png": "skipped-color",
        **{name: "failed" for name in bad},
    }
    assert len(records) == len(status)  # gray8.png named twice is done once
    failed_lines = [line for line in run.stderr.splitlines() if " FAILED " in f" {line}"]
    assert len(failed_lines) == len(bad)
    reasons = {n: r["error"] for n, r in by_input_name(records).items() if r["status"] == "failed"}
    assert "empty (0 bytes)" in reasons["empty.png"]
    assert "expected a JPEG, PNG or TIFF image" in reasons["notes.png"]
    assert "truncated or corrupt" in reasons["truncated.png"]
    assert "could not be decoded" in reasons["corrupt.jpg"]
    assert "received a BMP image" in reasons["old.bmp"]
    assert "max_pixels" in reasons["huge.png"] or "10000" in reasons["huge.png"]
    assert "no file at this path" in reasons["gone.png"]
    assert "no file at this path" in reasons["dir.png"]
    assert "blocked" in reasons["inner.png"]
    for name, reason in reasons.items():
        assert any(name in line and reason in line for line in failed_lines), name
    assert file_hashes(src) == before

    # 16 bit in -> 16 bit out, with sRGB ICC, EXIF, XMP and provenance.
    scan16 = by_input_name(records)["scan16.tif"]
    out16 = out / "sub" / "scan16.tif"
    assert scan16["output"] == str(out16) and scan16["bit_depth"] == 16
    assert scan16["model"] == "instacolor-untrained-w16" and len(scan16["weights_sha256"]) == 64
    assert scan16["working_size"] == 64
    assert set(scan16["timings"]) == {"read", "colorize", "write", "total"}
    assert tifffile.imread(out16).dtype == np.uint16
    with Image.open(out16) as image:
        assert image.info.get("icc_profile")
        assert image.getexif()[ExifTags.Base.Artist] == "County archive"
    assert b"Grandma, 1921" in tifffile.TiffFile(out16).pages[0].tags[700].value
    record = read_provenance(out16)
    assert record.input_sha256 == scan16["input_sha256"] == before[str(src / "sub/scan16.tif")]
    assert hashlib.sha256(out16.read_bytes()).hexdigest() == scan16["output_sha256"]
    with Image.open(out / "gray8.png") as image:
        assert image.mode == "RGB" and image.size == (64, 48)

    # Resume with --force: the colour image is recolored, complete ones are skipped.
    again = run_cli(env, "colorize", src, "-o", out, "--max-pixels", 10000, "--resume", "--force",
                 "--format", "png", *FAST)  # fmt: skip
    assert again.returncode == 1
    second = by_input_name(read_manifest(out)[len(records) :])
    assert second["colour.png"]["status"] == "done" and (out / "colour.png").is_file()
    assert second["gray8.png"]["status"] == "skipped-complete"
    assert second["scan16.tif"]["status"] == "done"  # --format png: a new output, scan16.png
    assert (out / "sub" / "scan16.png").is_file()
    assert second["empty.png"]["status"] == "failed"
    assert file_hashes(src) == before


@pytest.mark.slow
def test_usage_errors_exit_2(tmp_path, env):
    src = tmp_path / "in"
    write_png(src / "a.png", gray_ramp())
    onto_input = run_cli(env, "colorize", src / "a.png", "-o", src, *FAST)
    assert onto_input.returncode == 2
    assert "never writes over its inputs" in onto_input.stderr
    bad_outdir = run_cli(env, "colorize", src, "-o", "/proc/self/instacolor-out", *FAST)
    assert bad_outdir.returncode == 2 and "cannot create the output folder" in bad_outdir.stderr
    assert not (src / "manifest.jsonl").exists()
    vivid = run_cli(env, "colorize", src, "-o", tmp_path / "v", "--saturation", "9", *FAST)
    assert vivid.returncode == 2 and "expected a number from 0 to 4, received 9" in vivid.stderr
    assert not (tmp_path / "v").exists()


@pytest.mark.slow
def test_saturation_is_applied_and_recorded(tmp_path, env):
    src = tmp_path / "in"
    write_png(src / "a.png", gray_ramp())
    runs = {}
    for factor in ("1", "2.5"):
        out = tmp_path / f"out{factor}"
        assert (
            run_cli(env, "colorize", src, "-o", out, "--saturation", factor, *FAST).returncode == 0
        )
        runs[factor] = (read_manifest(out)[0], np.asarray(Image.open(out / "a.png"), np.float64))
    assert runs["1"][0]["saturation"] == 1.0 and runs["2.5"][0]["saturation"] == 2.5
    chroma = {k: np.ptp(img, axis=2).mean() for k, (_, img) in runs.items()}
    assert chroma["2.5"] > 1.5 * chroma["1"] > 0
    # a resumed run with other settings records the output's own, not its own settings
    out = tmp_path / "out2.5"
    assert run_cli(env, "colorize", src, "-o", out, "--resume", *FAST).returncode == 0
    skipped = read_manifest(out)[-1]
    assert skipped["status"] == "skipped-complete" and skipped["saturation"] == 2.5


def _disk_limit() -> None:
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and /proc are Linux")
def test_disk_full_and_existing_output_fail_one_image_each_and_detector_falls_back(tmp_path, env):
    src = tmp_path / "in"
    write_png(src / "small.png", gray_ramp())
    noise = np.random.default_rng(1).integers(0, 65536, (300, 300), dtype=np.uint16)
    Image.fromarray(noise).save(src / "noisy16.png")  # its 16-bit RGB output is > 200 kB
    write_png(src / "existing.png", gray_ramp(seed=5))
    out = tmp_path / "out"
    out.mkdir()
    (out / "existing.png").write_bytes(b"an earlier result")
    run = run_cli(env, "colorize", src, "-o", out, "--detector", "torchvision", *FAST,
               preexec_fn=_disk_limit)  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "DETECTOR 'torchvision' UNAVAILABLE" in run.stderr
    assert "WITHOUT instances" in run.stderr
    records = by_input_name(read_manifest(out))
    assert records["small.png"]["status"] == "done" and records["small.png"]["instances"] == 0
    assert records["noisy16.png"]["status"] == "failed"
    assert "disk full or file size limit" in records["noisy16.png"]["error"]
    assert records["existing.png"]["status"] == "failed"
    assert "already exists; pass --resume" in records["existing.png"]["error"]
    assert (out / "existing.png").read_bytes() == b"an earlier result"
    assert sorted(p.name for p in out.iterdir()) == ["existing.png", "manifest.jsonl", "small.png"]


@pytest.mark.slow
def test_killed_batch_resumes_without_partial_or_duplicate_outputs(tmp_path, env):
    src = tmp_path / "in"
    for i in range(40):
        write_png(src / f"img{i:02d}.png", gray_ramp(seed=i))
    before = file_hashes(src)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "instacolor", "colorize", str(src), "-o", str(out), *FAST]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.is_file() and manifest.read_text().count("\n") >= 3:
                break
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(read_manifest(out)) < 40, "the batch ended before it could be killed"
    # What a kill during a write and during a manifest append leaves behind:
    (out / ".img39.png.0badcafe.tmp").write_bytes(b"\x89PNG partial")
    with manifest.open("a") as fh:
        fh.write('{"status": "done", "inp')

    resumed = run_cli(env, "colorize", src, "-o", out, "--resume", "--workers", 2, *FAST)
    assert resumed.returncode == 0, resumed.stderr
    assert "removed 1 temporary file(s)" in resumed.stderr
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*"))
    outputs = sorted(p.name for p in out.glob("*.png"))
    assert outputs == sorted(p.name for p in src.iterdir())
    records = read_successes(manifest)
    done = Counter(r["input"] for r in _manifest_lines(manifest) if r.get("status") == "done")
    assert set(done) == set(before) and set(done.values()) == {1}
    for name in outputs:
        record = records[str(out / name)]
        assert record["output_sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*.png")}
    count = len(_manifest_lines(manifest))
    idle = run_cli(env, "colorize", src, "-o", out, "--resume", *FAST)
    assert idle.returncode == 0, idle.stderr
    last = _manifest_lines(manifest)[count:]
    assert len(last) == 40 and {r["status"] for r in last} == {"skipped-complete"}
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.png")} == stamps
    assert file_hashes(src) == before


def _manifest_lines(path: Path) -> list[dict]:
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


@pytest.mark.slow
def test_multi_page_tiff_first_page_or_all_pages(tmp_path, env):
    src = tmp_path / "in"
    src.mkdir()
    pages = [(gray_ramp(seed=k).astype(np.uint16) * 257) for k in range(3)]
    tifffile.imwrite(src / "book.tif", np.stack(pages), photometric="minisblack")
    before = file_hashes(src)
    first = run_cli(env, "colorize", src, "-o", tmp_path / "one", *FAST)
    assert first.returncode == 0, first.stderr
    (record,) = read_manifest(tmp_path / "one")
    assert "only page 1 of 3" in record["note"] and record["pages"] == {}
    assert not list((tmp_path / "one").glob("book.page*"))

    out = tmp_path / "all"
    run = run_cli(env, "colorize", src, "-o", out, *FAST, "--all-pages")
    assert run.returncode == 0, run.stderr
    (record,) = read_manifest(out)
    assert record["status"] == "done" and record["note"] is None
    expected = {str(out / "book.page2.tif"), str(out / "book.page3.tif")}
    assert set(record["pages"]) == expected
    for path, digest in record["pages"].items():
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest
        assert tifffile.imread(path).shape == (48, 64, 3)
        assert tifffile.imread(path).dtype == np.uint16
    # resume checks every page: a changed page is redone
    again = run_cli(env, "colorize", src, "-o", out, *FAST, "--all-pages", "--resume")
    assert read_manifest(out)[-1]["status"] == "skipped-complete", again.stderr
    (out / "book.page3.tif").write_bytes(b"damaged")
    redo = run_cli(env, "colorize", src, "-o", out, *FAST, "--all-pages", "--resume")
    assert read_manifest(out)[-1]["status"] == "done", redo.stderr
    assert tifffile.imread(out / "book.page3.tif").shape == (48, 64, 3)
    assert file_hashes(src) == before
