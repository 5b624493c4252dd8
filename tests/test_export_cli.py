"""``instacolor export``: the ONNX export as a subcommand (in-process through the CLI's main)."""

from __future__ import annotations

import json

import pytest

from instacolor.cli.main import main
from instacolor.runtime.export import MANIFEST_NAME

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def test_export_writes_checks_and_verifies_the_graphs(tmp_path, capsys, cache):
    out = tmp_path / "exported"
    argv = ["export", "--weights", "instacolor-untrained-w16", "--out", str(out)]
    code = main([*argv, "--working-size", "32", "--verify", "--threads", "1"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["width"] == 16
    for entry in manifest["graphs"].values():
        assert (out / entry["file"]).is_file() and entry["file"] in printed
    assert "onnx.checker: ok" in printed
    lines = [x for x in printed.splitlines() if x.startswith("parity ")]
    assert [x.split()[1] for x in lines] == ["0", "1", "8"]
    for line in lines:
        assert float(line.split("max |ab diff|")[1].split(",")[0]) < 1e-4


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--weights", "no-such-weights"], "unknown weights 'no-such-weights'"),
        (["--working-size", "0"], "expected an integer >= 1, received 0"),
        (["--opset", "x"], "expected an integer >= 1, received x"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(tmp_path, capsys, cache, argv, message):
    out = tmp_path / "exported"
    try:
        code = main(["export", "--out", str(out), *argv])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert not out.exists()
