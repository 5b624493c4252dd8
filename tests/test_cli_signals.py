"""SIGTERM and Ctrl-C stop ``instacolor colorize`` cleanly, run for real in a subprocess.

Batch schedulers, ``timeout`` and ``docker stop`` send SIGTERM. The signal is sent while
the hidden temporary file of a large output is on disk (the write is in progress), so
the test sees the worst moment. Checked: exit status (143 for SIGTERM, 130 for Ctrl-C),
one line on stderr and no traceback, no temporary file left, every manifest line is
valid and each of its outputs is complete, inputs untouched, and ``--resume`` then
finishes every image without redoing the complete ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from instacolor.batch.signals import Terminated, sigterm_interrupts
from tests.cli_helpers import FAST, cli_env, file_hashes
from tests.signal_helpers import LARGE, SMALL, stop_while_writing, write_inputs


@pytest.mark.slow
@pytest.mark.parametrize(
    ("workers", "signum", "whom", "status"),
    [
        (1, signal.SIGTERM, "process", 143),  # `kill PID`: this process only
        (1, signal.SIGINT, "process", 130),  # Ctrl-C takes the same path
        (2, signal.SIGTERM, "group", 143),  # `timeout`, schedulers: every process
        (2, signal.SIGTERM, "process", 143),  # the parent alone: it stops its workers
    ],
)
def test_a_signal_mid_write_stops_cleanly_and_resume_finishes(
    tmp_path, workers, signum, whom, status
):
    src = tmp_path / "in"
    write_inputs(src)
    before = file_hashes(src)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "instacolor", "colorize", str(src), "-o", str(out),
            "--workers", str(workers), *FAST]  # fmt: skip
    env = cli_env(tmp_path)
    proc = subprocess.Popen(
        args, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        if whom == "group":
            seen = stop_while_writing(proc, out, "b.png", lambda: os.killpg(proc.pid, signum))
        else:
            seen = stop_while_writing(proc, out, "b.png", lambda: proc.send_signal(signum))
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert seen, "the batch ended before the large output was being written"
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr
    word = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
    assert f"instacolor: {word}" in stderr and "--resume" in stderr
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"
    lines = (out / "manifest.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is whole, valid JSON
    assert records and {r["status"] for r in records} == {"done"}
    for record in records:
        output = Path(record["output"])
        assert hashlib.sha256(output.read_bytes()).hexdigest() == record["output_sha256"]
    recorded = {Path(r["output"]).name for r in records}
    assert set(SMALL) <= recorded < set(SMALL + LARGE), "the stop came too late"
    assert file_hashes(src) == before

    resumed = subprocess.run(
        [*args, "--resume"], env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    last = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    last = last[len(records) :]
    assert Counter(r["status"] for r in last) == {
        "skipped-complete": len(records),
        "done": len(SMALL + LARGE) - len(records),
    }
    assert sorted(p.name for p in out.glob("*.png")) == sorted(SMALL + LARGE)
    assert not list(out.rglob("*.tmp"))
    assert file_hashes(src) == before


@pytest.mark.slow
def test_sigterm_raises_terminated_only_while_a_batch_runs():
    # pytest leaves SIGTERM alone, but ray.init in an earlier test of this process
    # installs its own handler and keeps it after ray.shutdown: start from the default
    outer = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    previous = signal.SIG_DFL
    try:
        with pytest.raises(Terminated) as info, sigterm_interrupts():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs at once; never reached
    finally:
        restored = signal.signal(signal.SIGTERM, outer)
    assert isinstance(info.value, KeyboardInterrupt) and info.value.exit_status == 143
    assert restored is previous

    def own(signum, frame):  # an application's own handler is left in place
        own.calls += 1

    own.calls = 0
    signal.signal(signal.SIGTERM, own)
    try:
        with sigterm_interrupts():
            assert signal.getsignal(signal.SIGTERM) is own
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
        assert own.calls == 1
    finally:
        signal.signal(signal.SIGTERM, previous)
