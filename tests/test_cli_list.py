"""``instacolor colorize --list FILE``, run for real in a subprocess (see ``tests/test_cli.py``).

A list file may come from Windows (byte-order mark, CRLF line ends), carry comments and
blank lines, and name files relative to its own folder; a list that is not text is a
usage error that writes nothing.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

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


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return cli_env(tmp_path)


@pytest.mark.slow
def test_list_file_skips_comments_accepts_crlf_and_resolves_against_its_folder(tmp_path, env):
    src = tmp_path / "scans"
    write_png(src / "a.png", gray_ramp())
    write_png(src / "sub" / "b.png", gray_ramp(seed=1))
    write_png(tmp_path / "elsewhere" / "c.png", gray_ramp(seed=2))
    listing = src / "todo.txt"  # written on Windows: BOM and CRLF line ends
    lines = ["# box 4, scanned 1921", "", "a.png", "  # indented comment", "sub/b.png", "   ",
             str(tmp_path / "elsewhere" / "c.png"), "missing.png"]  # fmt: skip
    listing.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    before = {**file_hashes(src), **file_hashes(tmp_path / "elsewhere")}
    out = tmp_path / "out"
    run = subprocess.run(  # from another working directory: relative lines are not cwd's
        [sys.executable, "-m", "instacolor", "colorize", "--list", "scans/todo.txt", "-o", "out",
         *FAST],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr  # missing.png fails; no comment became an input
    records = by_input_name(read_manifest(out))
    assert {n: r["status"] for n, r in records.items()} == {
        "a.png": "done",
        "b.png": "done",
        "c.png": "done",
        "missing.png": "failed",
    }
    assert records["b.png"]["input"] == str(src / "sub" / "b.png")
    assert records["missing.png"]["input"] == str(src / "missing.png")
    assert [line for line in run.stderr.splitlines() if "FAILED" in line] == [
        f"instacolor: FAILED {src / 'missing.png'}: {records['missing.png']['error']}"
    ]
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png", "c.png"]
    assert {**file_hashes(src), **file_hashes(tmp_path / "elsewhere")} == before

    # A list that is not UTF-8 text: a usage error naming the list, nothing written.
    (tmp_path / "latin1.txt").write_bytes("caf\xe9.png\n".encode("latin-1"))
    bad = run_cli(env, "colorize", "--list", tmp_path / "latin1.txt", "-o", tmp_path / "o2", *FAST)
    assert bad.returncode == 2, bad.stderr
    assert "--list" in bad.stderr and "cannot read the list" in bad.stderr
    assert "expected a UTF-8 text file" in bad.stderr
    assert not (tmp_path / "o2").exists()
    help_text = run_cli(env, "colorize", "--help").stdout
    assert "relative paths are relative to FILE's folder" in " ".join(help_text.split())
