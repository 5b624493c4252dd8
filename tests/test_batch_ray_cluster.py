"""A Ray batch on a real multi-node Ray cluster started in the test, and a node killed mid-batch.

``ray.cluster_utils.Cluster`` starts a head node (no CPUs: no actor runs there) and two
worker nodes of 1 CPU each, as separate raylet processes on this machine; the driver
(this process) joins it by address, as ``instacolor colorize --ray HOST:PORT`` does.
Inputs and outputs lie in tmp_path, which every node sees (the shared storage a real
cluster needs). The untrained compact weights at working size 64 keep it small.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from instacolor.batch.run import Runner, colorize_batch
from instacolor.batch.worker import Settings
from instacolor.errors import UntrainedWeightsWarning
from instacolor.io.archival import read_provenance

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

pytestmark = pytest.mark.slow
SETTINGS = Settings(weights="instacolor-untrained-w16", working_size=64, threads=1)


def _inputs(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True)
    y, x = np.mgrid[0:size, 0:size]
    paths = []
    for k in range(count):
        gray = ((x * 3 + y * 2 + k * 29) % 256).astype(np.uint8)
        paths.append(folder / f"scan{k:02d}.png")
        Image.fromarray(gray).save(paths[-1])
    return paths


def _records(outdir: Path) -> list[dict]:
    text = (outdir / "manifest.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _check_outputs(records: list[dict], outdir: Path) -> None:
    """Every done output is whole (its sha256 is the record's) and carries its provenance."""
    for record in records:
        if record["status"] == "done":
            out = Path(record["output"])
            assert hashlib.sha256(out.read_bytes()).hexdigest() == record["output_sha256"]
            assert read_provenance(out).input_sha256 == record["input_sha256"]


@pytest.fixture
def cluster(monkeypatch):
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():  # pragma: no cover - another module left one open
        ray.shutdown()
    cluster = cluster_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    try:
        yield cluster, workers
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def _alive_worker_nodes() -> int:
    return sum(1 for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0)


def test_a_batch_on_two_worker_nodes_writes_every_output_once(cluster, tmp_path):
    cluster, _ = cluster
    sources = _inputs(tmp_path / "in", 8, 96)
    out = tmp_path / "out"
    runner = Runner(ray=True, address=cluster.address, workers=2, chunk=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        counts = colorize_batch([tmp_path / "in"], out, SETTINGS, runner=runner)
    assert counts == {"done": 8}
    records = _records(out)
    assert sorted(r["input"] for r in records) == sorted(map(str, sources))  # once each
    _check_outputs(records, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [p.name for p in sources] + ["manifest.jsonl"]
    )  # no temporary file, nothing twice


def test_a_worker_node_killed_mid_batch_loses_nothing(cluster, tmp_path):
    cluster, workers = cluster
    sources = _inputs(tmp_path / "in", 16, 640)
    out = tmp_path / "out"
    killed = threading.Event()
    seen_at_kill: list[int] = []

    def kill_after_first_output() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if out.is_dir() and any(p.suffix == ".png" for p in out.iterdir()):
                break
            time.sleep(0.05)
        seen_at_kill.append(len(_records(out)) if (out / "manifest.jsonl").exists() else 0)
        cluster.remove_node(workers[1], allow_graceful=False)  # as if the machine died
        killed.set()

    killer = threading.Thread(target=kill_after_first_output, daemon=True)
    killer.start()
    runner = Runner(ray=True, address=cluster.address, workers=2, chunk=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        counts = colorize_batch([tmp_path / "in"], out, SETTINGS, runner=runner)
        killer.join(timeout=120)
        assert killed.is_set() and seen_at_kill[0] < len(sources)  # killed mid-batch
        records = _records(out)
        # no replacement node: the batch goes on with the actor on the node left, and
        # every input has exactly one record: done, or failed because its node died
        assert sorted(r["input"] for r in records) == sorted(map(str, sources))
        assert sum(counts.values()) == len(sources) and set(counts) <= {"done", "failed"}
        for record in records:
            if record["status"] == "failed":
                assert "Ray" in record["error"] or "actor" in record["error"], record["error"]
        _check_outputs(records, out)
        done_before = {r["input"]: r["output_sha256"] for r in records if r["status"] == "done"}
        # --resume finishes what the dead node held, rewrites nothing done, cleans its temps
        again = colorize_batch([tmp_path / "in"], out, SETTINGS, runner=runner, resume=True)
    print(f"killed after {seen_at_kill[0]} records: {counts}; resume: {again}")
    assert again.get("done", 0) == counts.get("failed", 0)
    assert again.get("skipped-complete", 0) == counts.get("done", 0)
    final = {}
    for record in _records(out):
        final[record["input"]] = record
    assert all(r["status"] in ("done", "skipped-complete") for r in final.values())
    for name, digest in done_before.items():
        assert hashlib.sha256(Path(final[name]["output"]).read_bytes()).hexdigest() == digest
    _check_outputs(list(final.values()), out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [p.name for p in sources] + ["manifest.jsonl"]
    )  # no half-written or temporary file left
