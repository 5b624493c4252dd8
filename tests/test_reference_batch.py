"""Per-input colour references of a batch: ``NAME.reference.EXT`` sidecars and the hints'
``"reference"`` field (:mod:`instacolor.hints.sidecars`), run for real."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from instacolor.batch.jobs import discover
from instacolor.errors import InputError
from instacolor.hints import hints_for, hints_object_for, read_hints_lines, read_hints_object
from instacolor.hints.sidecars import (
    input_references,
    is_reference_sidecar,
    named_references,
    reference_sidecars,
    references_in,
)
from tests.cli_helpers import FAST, cli_env, run_cli


def _photo(flip: bool = False) -> np.ndarray:
    """A 96x128 colour photo stand-in: textured halves of two colours."""
    y, x = np.mgrid[0:96, 0:128]
    tex = 0.55 + 0.35 * np.sin(x / 3.0) * np.where(x < 64, 1.0, np.sin(y / 4.0))
    hue = np.where((x < 64)[..., None], [1.0, 0.35, 0.3], [0.3, 0.5, 1.0])
    rgb = (np.clip(tex, 0, 1)[..., None] * hue * 255).astype(np.uint8)
    return rgb[:, ::-1].copy() if flip else rgb


def _gray(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_photo()).convert("L").save(path)
    return path


def _colour(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_photo(flip=True)).save(path)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _records(manifest: Path) -> dict[str, dict]:
    lines = manifest.read_text(encoding="utf-8").splitlines()
    return {Path(r["input"]).name: r for r in map(json.loads, lines)}


def test_sidecar_names_and_their_order(tmp_path):
    assert is_reference_sidecar("street 1962.reference.JPG")
    assert is_reference_sidecar("a.reference.tiff") and is_reference_sidecar("a.Reference.Png")
    assert not is_reference_sidecar("a.jpg") and not is_reference_sidecar(".reference.jpg")
    assert not is_reference_sidecar("a.reference.gif") and not is_reference_sidecar("a.hints.json")
    photo = _gray(tmp_path / "photo.tif")
    for name in ["photo.reference.png", "photo.reference.JPG", "photo2.reference.jpg"]:
        _colour(tmp_path / name)
    found = [p.name for p in reference_sidecars(photo)]
    assert found == ["photo.reference.JPG", "photo.reference.png"]  # all, in name order


def test_the_path_rule_of_a_hints_file(tmp_path):
    hints = tmp_path / "scans" / "a.hints.json"
    inside = _colour(tmp_path / "scans" / "colour" / "car.jpg")
    outside = _colour(tmp_path / "elsewhere.jpg")
    got = references_in({"reference": "colour/car.jpg"}, hints, "hints")
    assert got == [inside.resolve()]
    got = references_in({"reference": ["colour/../colour/car.jpg"]}, hints, "hints")
    assert got == [inside.resolve()]
    assert references_in({"points": []}, hints, "hints") == []
    (tmp_path / "scans" / "link.jpg").symlink_to(outside)
    refused = {
        str(outside): "absolute",
        "../elsewhere.jpg": "leads out",
        "link.jpg": "leads out",  # a symbolic link out of the folder
        "": "empty",
        "a\0b.jpg": "NUL",
    }
    for path, why in refused.items():
        with pytest.raises(InputError, match=why):
            references_in({"reference": path}, hints, "hints")
    for value in [[], 3, ["ok.jpg", None], {"path": "x.jpg"}]:
        with pytest.raises(InputError, match="a path or a non-empty list"):
            references_in({"reference": value}, hints, "hints")


def test_input_references_take_the_jsonl_line_before_the_sidecar(tmp_path):
    photo = _gray(tmp_path / "scans" / "a.png")
    _colour(tmp_path / "scans" / "a.reference.png")
    _colour(tmp_path / "scans" / "side.png")
    line_ref = _colour(tmp_path / "lines" / "from-line.png")
    (tmp_path / "scans" / "a.hints.json").write_text(json.dumps({"reference": "side.png"}))
    found = input_references(photo)
    assert [(p.name, o) for p, o in found] == [
        ("a.reference.png", "sidecar"),
        ("side.png", "hints"),
    ]
    jsonl = tmp_path / "lines" / "hints.jsonl"
    jsonl.write_text(json.dumps({"input": str(photo), "reference": ["from-line.png"]}) + "\n")
    found = input_references(photo, read_hints_lines(jsonl), jsonl)
    assert found[1] == (line_ref.resolve(), "hints")
    (tmp_path / "scans" / "a.hints.json").write_text("{not json")
    with pytest.raises(InputError, match=r"a\.hints\.json"):
        input_references(photo)


def test_a_hints_file_is_parsed_once_for_its_points_and_its_references(tmp_path):
    photo = _gray(tmp_path / "a.png")
    colour = _colour(tmp_path / "colour" / "car.png")
    sidecar = tmp_path / "a.hints.json"
    sidecar.write_text(json.dumps({"points": [[3, 4, "#c03020"]], "reference": "colour/car.png"}))
    own = hints_object_for(photo)
    sidecar.unlink()  # both fields come from the one reading
    assert own.path == sidecar and own.references == (colour.resolve(),)
    assert [(p.x, p.y) for p in own.hints.points] == [(3.0, 4.0)]
    with pytest.raises(AttributeError):
        own.path = tmp_path  # frozen
    # a bad field fails only the one that uses it, with the message naming the file
    sidecar.write_text(json.dumps({"points": "nope", "reference": "colour/car.png"}))
    assert input_references(photo) == [(colour.resolve(), "hints")]
    with pytest.raises(InputError, match=r"a\.hints\.json: expected 'points' a list"):
        _ = read_hints_object(sidecar).hints
    sidecar.write_text(json.dumps({"points": [[3, 4, "#c03020"]], "reference": "../x.png"}))
    assert len(hints_for(photo).points) == 1
    with pytest.raises(InputError, match=r"a\.hints\.json: reference '\.\./x\.png' .* leads out"):
        _ = read_hints_object(sidecar).references
    assert hints_object_for(tmp_path / "none.png") is None


def test_a_folder_walk_never_takes_a_reference_as_an_input(tmp_path):
    scans = tmp_path / "scans"
    for name in ["a.png", "b.png", "sub/c.png"]:
        _gray(scans / name)
    _colour(scans / "a.reference.jpg")
    _colour(scans / "colour" / "street.png")  # named by b's hints
    _colour(scans / "sub" / "named-by-line.png")  # named by the --hints file
    (scans / "b.hints.json").write_text(json.dumps({"reference": "colour/street.png"}))
    jsonl = scans / "sub" / "hints.jsonl"
    jsonl.write_text(
        json.dumps({"input": str(scans / "sub/c.png"), "reference": "named-by-line.png"})
    )
    finder = lambda sources: named_references(sources, read_hints_lines(jsonl), jsonl)  # noqa: E731
    jobs, _ = discover([str(scans)], None, tmp_path / "out", None, references=finder)
    assert sorted(j.source.relative_to(scans).as_posix() for j in jobs) == [
        "a.png",
        "b.png",
        "sub/c.png",
    ]
    # named on the command line, a file is always attempted
    jobs, _ = discover([str(scans / "a.reference.jpg")], None, tmp_path / "out", None)
    assert [j.source.name for j in jobs] == ["a.reference.jpg"]


@pytest.mark.slow
def test_per_input_references_join_the_batch_ones_and_are_recorded(tmp_path):
    scans = tmp_path / "scans"
    for name in ["a.png", "b.png", "c.png"]:
        _gray(scans / name)
    common = _colour(tmp_path / "common.jpg")
    side_jpg = _colour(scans / "a.reference.jpg")
    side_png = _colour(scans / "a.reference.png")
    named = _colour(scans / "colour" / "street.png")
    (scans / "b.hints.json").write_text(
        json.dumps({"points": [[5, 5, "#c03020"]], "reference": ["colour/street.png"]})
    )
    env = cli_env(tmp_path)
    plain = run_cli(env, "colorize", scans, "-o", tmp_path / "plain", *FAST)
    result = run_cli(env, "colorize", scans, "-o", tmp_path / "out", "--reference", common, *FAST)
    assert plain.returncode == 0 and result.returncode == 0, result.stderr
    records = _records(tmp_path / "out" / "manifest.jsonl")
    assert sorted(records) == ["a.png", "b.png", "c.png"]  # no reference became an input
    assert not (tmp_path / "out" / "colour").exists()
    option = {"path": str(common), "sha256": _sha(common), "origin": "option"}
    assert records["a.png"]["references"] == [
        option,
        {"path": str(side_jpg), "sha256": _sha(side_jpg), "origin": "sidecar"},
        {"path": str(side_png), "sha256": _sha(side_png), "origin": "sidecar"},
    ]
    assert records["b.png"]["references"] == [
        option,
        {"path": str(named.resolve()), "sha256": _sha(named), "origin": "hints"},
    ]
    assert records["b.png"]["hints"] == 1
    assert records["c.png"]["references"] == [option]
    digests = {r["references_sha256"] for r in records.values()}
    assert len(digests) == 3  # the pixels' digest (in the provenance) follows the references
    # a, b and c are the same gray photo: without --reference, a's sidecars and b's
    # hints colour them, c keeps the network's colours
    plain = {n: np.asarray(Image.open(tmp_path / "plain" / n), np.int16) for n in records}
    assert np.abs(plain["a.png"] - plain["c.png"]).mean() > 5.0
    assert np.abs(plain["b.png"] - plain["c.png"]).mean() > 5.0
    assert [
        r["origin"] for r in _records(tmp_path / "plain" / "manifest.jsonl")["a.png"]["references"]
    ] == ["sidecar", "sidecar"]


@pytest.mark.slow
def test_a_bad_reference_of_one_input_fails_that_input_only(tmp_path):
    scans = tmp_path / "scans"
    names = ["gray", "broken", "missing", "absolute", "escape", "good"]
    for name in names:
        _gray(scans / f"{name}.png")
    Image.fromarray(_photo()).convert("L").save(scans / "gray.reference.png")
    (scans / "broken.reference.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    outside = _colour(tmp_path / "outside.png")
    fields = {"missing": "nowhere.png", "absolute": str(outside), "escape": "../outside.png"}
    for name, path in fields.items():
        (scans / f"{name}.hints.json").write_text(json.dumps({"reference": path}))
    out = tmp_path / "out"
    out.mkdir()
    for name in names[:-1]:  # earlier outputs that --overwrite must not lose
        (out / f"{name}.png").write_bytes(b"earlier output of " + name.encode())
    before = {p: p.read_bytes() for p in scans.rglob("*") if p.is_file()}
    result = run_cli(cli_env(tmp_path), "colorize", scans, "-o", out, "--overwrite", *FAST)
    assert result.returncode == 1
    records = _records(out / "manifest.jsonl")
    expected = {
        "gray": ("gray.reference.png", "no colour to take"),
        "broken": ("broken.reference.jpg", "could not decode"),
        "missing": ("nowhere.png", "does not exist"),
        "absolute": ("outside.png", "an absolute path"),
        "escape": ("../outside.png", "leads out of the hints file's folder"),
    }
    for name, (file, why) in expected.items():
        record = records[f"{name}.png"]
        assert record["status"] == "failed"
        assert file in record["error"] and why in record["error"], record["error"]
        line = next(x for x in result.stderr.splitlines() if f"FAILED {scans / name}.png" in x)
        assert file in line
        assert (out / f"{name}.png").read_bytes() == b"earlier output of " + name.encode()
    assert records["good.png"]["status"] == "done"
    assert {p: p.read_bytes() for p in scans.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}.png" for n in names] + ["manifest.jsonl"]
    )


@pytest.mark.slow
def test_hostile_file_names_of_inputs_and_references(tmp_path):
    scans = tmp_path / "scans"
    stem = "we\nird \"quoted\" 'ü' $(x)"
    _gray(scans / f"{stem}.png")
    side = _colour(scans / f"{stem}.reference.jpg")
    named = _colour(scans / "colour" / "ref\nname 'é'.png")
    (scans / f"{stem}.hints.json").write_text(
        json.dumps({"reference": "colour/ref\nname 'é'.png"}), encoding="utf-8"
    )
    out = tmp_path / "out"
    result = run_cli(cli_env(tmp_path), "colorize", scans, "-o", out, *FAST)
    assert result.returncode == 0, result.stderr
    (record,) = _records(out / "manifest.jsonl").values()
    assert [r["path"] for r in record["references"]] == [str(side), str(named.resolve())]
    assert sorted(os.listdir(out)) == sorted([f"{stem}.png", "manifest.jsonl"])
