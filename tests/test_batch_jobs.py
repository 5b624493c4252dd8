"""Discovery, output mapping, list files and stale temporary files (:mod:`instacolor.batch.jobs`).

Real folders and files made here; nothing is mocked.
"""

from __future__ import annotations

import json

import pytest

from instacolor import errors
from instacolor.batch import jobs as jobs_module
from instacolor.batch.jobs import (
    Job,
    UsageError,
    classify_inputs,
    clean_stale_temps,
    discover,
    read_list,
)
from tests.cli_helpers import gray_ramp, write_png


def test_discover_mirrors_folders_and_refuses_mistakes(tmp_path):
    src = tmp_path / "in"
    write_png(src / "a" / "x.tif", gray_ramp())
    write_png(src / ".hidden.png", gray_ramp())
    (src / "notes.txt").write_text("not an image")
    out = src / "colorized"  # inside the input folder: never read back as input
    write_png(out / "old.png", gray_ramp())
    jobs, refused = discover([str(src)], None, out, "png")
    assert jobs == [Job(src / "a" / "x.tif", out / "a" / "x.png")] and refused == []
    write_png(tmp_path / "b" / "x.png", gray_ramp())
    jobs, refused = discover(
        [str(src / "a" / "x.tif"), str(tmp_path / "b/x.png")], None, out, "png"
    )
    assert len(jobs) == 1 and "already the output of" in refused[0][1]
    with pytest.raises(UsageError, match="no such file or folder"):
        discover([str(tmp_path / "missing")], None, out, None)
    with pytest.raises(UsageError, match="matches no file"):
        discover([str(tmp_path / "*.nothing")], None, out, None)
    with pytest.raises(UsageError, match="is the output folder or inside it"):
        discover([str(out)], None, out, None)
    with pytest.raises(UsageError, match="never writes over its inputs"):
        discover([str(src / "a" / "x.tif")], None, src / "a", None)


def test_stale_temp_cleanup_removes_only_this_batchs_temp_files(tmp_path):
    job = Job(tmp_path / "in.png", tmp_path / "out" / "photo.png")
    job.output.parent.mkdir()
    ours = job.output.parent / ".photo.png.1234abcd.tmp"
    other = [job.output.parent / ".other.png.1234abcd.tmp", job.output.parent / ".photo.png.tmp"]
    for path in [ours, *other]:
        path.write_bytes(b"x")
    assert clean_stale_temps([job]) == [ours]
    assert all(p.exists() for p in other) and not ours.exists()


def test_usage_error_lives_in_errors_and_keeps_its_old_import():
    assert UsageError is errors.UsageError is jobs_module.UsageError
    assert issubclass(UsageError, errors.InstacolorError) and issubclass(UsageError, ValueError)
    assert errors.UsageError.__doc__


def test_read_list_skips_comments_and_blanks_reads_crlf_and_resolves_against_its_folder(
    tmp_path,
):
    folder = tmp_path / "lists"
    folder.mkdir()
    listing = folder / "todo.txt"
    listing.write_bytes(
        b"\xef\xbb\xbf# scans of box 4\r\n\r\nsub/a.png\r\n   \r\n  # indented\r\n"
        + f"{tmp_path / 'abs.tif'}\r\n../up.jpg\r\n  #also-a-comment.png\r\nlast.png".encode()
    )
    assert read_list(listing) == [
        folder / "sub" / "a.png",
        tmp_path / "abs.tif",
        folder / ".." / "up.jpg",
        folder / "last.png",
    ]
    # discover keeps only the names of listed files in the output folder
    jobs, refused = discover([], str(listing), tmp_path / "out", None)
    assert [j.source for j in jobs] == read_list(listing) and refused == []
    assert [j.output.name for j in jobs] == ["a.png", "abs.tif", "up.jpg", "last.png"]


def test_read_list_errors_say_what_was_expected(tmp_path):
    with pytest.raises(UsageError, match=r"cannot read the list.*expected a UTF-8 text file"):
        read_list(tmp_path / "missing.txt")
    with pytest.raises(UsageError, match="cannot read the list"):
        read_list(tmp_path)  # a folder
    (tmp_path / "utf16.txt").write_text("a.png\n", encoding="utf-16")
    with pytest.raises(UsageError, match=r"utf16\.txt: cannot read the list"):
        read_list(tmp_path / "utf16.txt")
    only_comments = tmp_path / "empty.txt"
    only_comments.write_text("# nothing yet\n\n")
    assert read_list(only_comments) == []
    with pytest.raises(UsageError, match="no input images found"):
        discover([], str(only_comments), tmp_path / "out", None)


def test_classify_inputs_of_the_library(tmp_path):
    write_png(tmp_path / "in" / "a.png", gray_ramp())
    listing = tmp_path / "todo.txt"
    listing.write_text("in/a.png\n")
    manifest = tmp_path / "old.jsonl"
    records = [{"input": "/x/a.png"}, {"input": "/x/b.png"}, {"input": "/x/a.png"}]
    manifest.write_text("\n".join(json.dumps(r) for r in records) + "\n{cut")
    assert classify_inputs(tmp_path / "in") == ([str(tmp_path / "in")], None, [])
    assert classify_inputs(tmp_path / "in" / "a.png") == ([str(tmp_path / "in/a.png")], None, [])
    assert classify_inputs(["x", tmp_path]) == (["x", str(tmp_path)], None, [])
    assert classify_inputs(listing) == ([], str(listing), [])
    assert classify_inputs(manifest) == ([], None, ["/x/a.png", "/x/b.png"])
    (tmp_path / "bad.jsonl").write_text("not json\n")
    with pytest.raises(errors.InputError, match="expected JSON lines with an 'input' field"):
        classify_inputs(tmp_path / "bad.jsonl")
