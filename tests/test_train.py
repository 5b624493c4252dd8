"""Training stages on a tiny generated dataset: loss goes down, resume is bit-exact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from instacolor.labels import UNKNOWN
from instacolor.models.network import instance_placements
from instacolor.train.data import ColorImages, FusionScenes, InstanceCrops, list_images
from instacolor.train.loop import TrainConfig, learning_rate, list_collate
from instacolor.train.losses import (
    AB_BINS,
    ab_bin_index,
    ab_prior,
    huber_ab_loss,
    l2_ab_loss,
    rebalance_weights,
)
from instacolor.train.trainer import train_stage

SIZE, WIDTH = 32, 4


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Eight 48x40 images of coloured rectangles on tinted backgrounds, plus a gray one."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(8):
        img = np.empty((40, 48, 3), np.uint8)
        img[:] = rng.integers(40, 215, 3)
        for _ in range(3):
            x0, y0 = rng.integers(0, 30), rng.integers(0, 24)
            img[y0 : y0 + 14, x0 : x0 + 16] = rng.integers(0, 255, 3)
        Image.fromarray(img).save(folder / f"img{i}.png")
    Image.fromarray(np.full((40, 48, 3), 128, np.uint8)).save(folder / "gray.png")
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(folder / "gray2.png")
    (folder / "GRAYSCALE_OR_LOWCHROMA.txt").write_text("gray.png\nsub/gray2.png\tmode_L\t0.00\n")
    return folder


def _config(tmp: Path, stage: int, steps: int, init: str | None = None) -> TrainConfig:
    return TrainConfig(
        stage=stage,
        out_dir=str(tmp),
        width=WIDTH,
        size=SIZE,
        batch_size=4,
        lr=2e-3,
        steps=steps,
        checkpoint_every=3,
        validate_every=1000,
        workers=0,
        init=init,
    )


def _losses(folder: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (folder / "log.jsonl").read_text().splitlines()]


def test_list_images_skips_the_gray_list(image_folder):
    names = [p.name for p in list_images(image_folder)]
    assert len(names) == 8 and "gray.png" not in names and "gray2.png" not in names


def test_samples_are_reproducible_per_epoch(image_folder):
    data = ColorImages(list_images(image_folder), SIZE, seed=1)
    a = data[3]["ab"]
    assert torch.equal(a, data[3]["ab"])
    data.set_epoch(1)
    assert not torch.equal(a, data[3]["ab"])  # new epoch, new crop/flip
    assert data[3]["l"].shape == (1, SIZE, SIZE) and data[3]["ab"].shape == (2, SIZE, SIZE)


@pytest.mark.slow
def test_three_stages_learn_and_resume_bit_exactly(image_folder, tmp_path):
    files = list_images(image_folder)
    stage1 = ColorImages(files, SIZE)
    net = train_stage(_config(tmp_path / "s1", 1, 24), stage1, progress=False)
    losses = _losses(tmp_path / "s1")
    assert np.mean(losses[-4:]) < np.mean(losses[:4])

    # resume: 3 steps, stop, continue to 6 == 6 steps straight
    straight = train_stage(_config(tmp_path / "a", 1, 6), stage1, progress=False)
    train_stage(_config(tmp_path / "b", 1, 3), stage1, progress=False)
    resumed = train_stage(_config(tmp_path / "b", 1, 6), stage1, resume=True, progress=False)
    for (k, v), w in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v, w), k

    boxes = {f.name: np.array([[4.0, 4.0, 30.0, 28.0], [10.0, 2.0, 46.0, 38.0]]) for f in files}
    crops = InstanceCrops(files, SIZE, boxes=boxes)
    train_stage(
        _config(tmp_path / "s2", 2, 24, str(tmp_path / "s1" / "latest.pt")), crops, progress=False
    )
    losses = _losses(tmp_path / "s2")
    assert np.mean(losses[-4:]) < np.mean(losses[:4])

    scenes = FusionScenes(files, SIZE, boxes=boxes)
    cfg = _config(tmp_path / "s3", 3, 16, str(tmp_path / "s2" / "latest.pt"))
    cfg.lr = 5e-3
    fused = train_stage(cfg, scenes, collate=list_collate, progress=False)
    losses = _losses(tmp_path / "s3")
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    # stage 3 trains only the fusion head: the backbone stays the stage-1 network
    assert torch.equal(fused.fusion.model1[0].weight, net.full.model1[0].weight)
    assert torch.equal(fused.full.model1[0].weight, net.full.model1[0].weight)

    # a stage-3 checkpoint can be trained further: its fusion head is kept, not re-initialised
    more = _config(tmp_path / "s3more", 3, 1, str(tmp_path / "s3" / "latest.pt"))
    more.lr = 0.0
    again = train_stage(more, scenes, collate=list_collate, progress=False)
    for (k, v), w in zip(fused.fusion.state_dict().items(), again.fusion.state_dict().values()):
        assert torch.equal(v, w), k


def test_label_dropout_is_seeded_and_drops_the_map(image_folder):
    files = list_images(image_folder)
    labels = {f.name: np.full((40, 48), 3, np.uint8) for f in files}

    def drops(p: float, seed: int = 0) -> list[bool]:
        scenes = FusionScenes(files, SIZE, semantic=labels, label_dropout=p, seed=seed)
        return [bool(scenes[i]["drop_labels"]) for i in range(len(scenes))]

    assert drops(0.0) == [False] * 8 and drops(1.0) == [True] * 8
    half = drops(0.5)
    assert half == drops(0.5) and 0 < sum(half) < 8  # reproducible, mixed
    plain = FusionScenes(files, SIZE, semantic=labels, label_dropout=0.0)
    dropped = FusionScenes(files, SIZE, semantic=labels, label_dropout=1.0)
    assert torch.equal(plain[2]["crops"], dropped[2]["crops"])  # the draw changes nothing else
    # a scene without a map (extra scenes with sampled boxes) always trains without one
    partial = {f.name: m for f, m in zip(files[:4], labels.values())}
    mixed = FusionScenes(files, SIZE, semantic=partial, label_dropout=0.0)
    assert [bool(mixed[i]["drop_labels"]) for i in range(8)] == [False] * 4 + [True] * 4


@pytest.mark.slow
def test_later_stages_refuse_a_missing_or_wrong_init(image_folder, tmp_path):
    data = ColorImages(list_images(image_folder), SIZE)
    with pytest.raises(ValueError, match="stage-1 checkpoint"):
        train_stage(_config(tmp_path / "x", 2, 1), data, progress=False)
    train_stage(_config(tmp_path / "s1", 1, 1), data, progress=False)
    with pytest.raises(ValueError, match="stage-2 checkpoint"):
        train_stage(
            _config(tmp_path / "y", 3, 1, str(tmp_path / "s1" / "latest.pt")), data, progress=False
        )


def test_rebalancing_weighs_rare_colours_up_and_keeps_the_mean():
    g = torch.Generator().manual_seed(0)
    ab = torch.full((4, 2, 16, 16), 0.02)  # nearly gray, one bin ...
    ab[:, :, :1] = torch.tensor([0.5, -0.4]).view(1, 2, 1, 1)  # ... and a rare saturated one
    prior = ab_prior(ab)
    assert prior.shape == (AB_BINS**2,) and abs(float(prior.sum()) - 1) < 1e-6
    w = rebalance_weights(prior, 0.5)
    assert abs(float((prior * w).sum()) - 1) < 1e-5  # E_p[w] == 1
    gray, rare = ab_bin_index(ab)[0, 10, 0], ab_bin_index(ab)[0, 0, 0]
    assert w[rare] > 2 * w[gray]  # 1/(0.03 + 0.25) vs 1/(0.47 + 0.25)
    # lambda = 1: every colour that occurs weighs the same, so the loss is unchanged
    flat = rebalance_weights(prior, 1.0)
    pred = torch.randn(ab.shape, generator=g) * 0.1
    assert torch.allclose(huber_ab_loss(pred, ab, flat), huber_ab_loss(pred, ab) * flat[gray])


@pytest.mark.slow
def test_rebalanced_stage_learns(image_folder, tmp_path):
    files = list_images(image_folder)
    data = ColorImages(files, SIZE)
    cfg = _config(tmp_path / "r", 1, 24)
    cfg.rebalance = 0.5
    with pytest.raises(ValueError, match="prior"):
        train_stage(cfg, data, progress=False)
    cfg.prior = ab_prior(torch.stack([data[i]["ab"] for i in range(len(data))])).tolist()
    train_stage(cfg, data, progress=False)
    losses = _losses(tmp_path / "r")
    assert np.mean(losses[-4:]) < np.mean(losses[:4])


@pytest.mark.slow
def test_stage3_takes_the_full_network_from_init_full(image_folder, tmp_path):
    files = list_images(image_folder)
    data = ColorImages(files, SIZE)
    train_stage(_config(tmp_path / "s1", 1, 1), data, progress=False)
    s1 = str(tmp_path / "s1" / "latest.pt")
    train_stage(_config(tmp_path / "s2", 2, 1, s1), InstanceCrops(files, SIZE), progress=False)
    later = train_stage(_config(tmp_path / "s1b", 1, 3), data, progress=False)
    cfg = _config(tmp_path / "s3", 3, 1, str(tmp_path / "s2" / "latest.pt"))
    cfg.init_full = str(tmp_path / "s1b" / "latest.pt")
    fused = train_stage(cfg, FusionScenes(files, SIZE), collate=list_collate, progress=False)
    assert torch.equal(fused.full.model1[0].weight, later.full.model1[0].weight)
    assert torch.equal(fused.fusion.model1[0].weight, later.full.model1[0].weight)
    cfg = _config(tmp_path / "bad", 2, 1, s1)
    cfg.init_full = s1
    with pytest.raises(ValueError, match="instance_from_full are for stage 3"):
        train_stage(cfg, data, progress=False)


@pytest.mark.slow
def test_stage3_learns_semantic_conditioning_from_label_maps(image_folder, tmp_path):
    files = list_images(image_folder)
    boxes = {f.name: np.array([[4.0, 4.0, 30.0, 28.0]]) for f in files}
    labels = np.zeros((40, 48), np.uint8)
    labels[4:28, 4:30] = 17  # a "horse" where the box is, "person" elsewhere
    semantic = {f.name: labels for f in files[:-1]}  # the last file has no map
    scenes = FusionScenes(files, SIZE, boxes=boxes, semantic=semantic)
    assert scenes[0]["labels"].shape == (SIZE, SIZE)
    assert set(scenes[0]["labels"].unique().tolist()) == {0, 17}
    assert set(scenes[len(files) - 1]["labels"].unique().tolist()) == {UNKNOWN}
    train_stage(_config(tmp_path / "s1", 1, 1), ColorImages(files, SIZE), progress=False)
    s1 = str(tmp_path / "s1" / "latest.pt")
    train_stage(_config(tmp_path / "s2", 2, 1, s1), InstanceCrops(files, SIZE), progress=False)
    cfg = _config(tmp_path / "s3", 3, 4, str(tmp_path / "s2" / "latest.pt"))
    fused = train_stage(cfg, scenes, collate=list_collate, progress=False)
    # zero-initialised scale/shift convolutions moved away from the identity
    moved = [
        float(p.detach().abs().sum()) for n, p in fused.semantic.named_parameters() if "gamma" in n
    ]
    assert moved and all(m > 0 for m in moved)


def test_list_images_takes_extra_skip_lists(tmp_path):
    sub = tmp_path / "images"
    sub.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(sub / name)
    listing = tmp_path / "GRAYSCALE_OR_LOWCHROMA.txt"  # at the dataset root, beside images/
    listing.write_text("images/b.png\tmode_L\n")
    assert [p.name for p in list_images(sub)] == ["a.png", "b.png", "c.png"]
    assert [p.name for p in list_images(sub, [listing])] == ["a.png", "c.png"]


def test_l2_loss_is_the_squared_error_of_colourful_samples():
    target = torch.zeros(2, 2, 4, 4)
    target[0, 0, :2] = 0.3  # sample 0 is colourful (a spans 0.3 = 33 Lab units)
    pred = target + 0.1
    # sample 1 is gray: masked; sample 0: 10 * mean(sum over channels of 0.1 ** 2)
    assert l2_ab_loss(pred, target).item() == pytest.approx(10 * 2 * 0.01, rel=1e-5)
    assert l2_ab_loss(pred[1:], target[1:]).item() == 0.0


def test_cosine_schedule_decays_to_zero():
    cfg = TrainConfig(stage=1, out_dir="unused", lr=1e-3, steps=100, lr_schedule="cosine")
    assert learning_rate(cfg, 0) == pytest.approx(1e-3)
    assert learning_rate(cfg, 50) == pytest.approx(5e-4)
    assert 0 < learning_rate(cfg, 99) < 1e-6
    assert learning_rate(TrainConfig(stage=1, out_dir="unused", lr=1e-3), 99) == 1e-3


@pytest.mark.slow
def test_l2_cosine_stage_learns_and_resumes_bit_exactly(image_folder, tmp_path):
    data = ColorImages(list_images(image_folder), SIZE)

    def cfg(out: str, steps: int) -> TrainConfig:
        c = _config(tmp_path / out, 1, steps)
        c.loss, c.lr_schedule = "l2", "cosine"
        return c

    train_stage(cfg("l2", 24), data, progress=False)
    losses = _losses(tmp_path / "l2")
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    # the decayed rate depends on the step alone: 3 + 3 resumed steps == 6 straight
    straight = train_stage(cfg("a", 6), data, progress=False)
    interrupted = cfg("b", 6)
    interrupted.validate_every = 1

    def stop_at_4(net, step):
        if step == 4:  # after the step-3 checkpoint, before the next one
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        train_stage(interrupted, data, validate=stop_at_4, progress=False)
    resumed = train_stage(cfg("b", 6), data, resume=True, progress=False)
    for (k, v), w in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v, w), k


@pytest.mark.parametrize(("field", "value"), [("loss", "l1"), ("lr_schedule", "step")])
def test_unknown_loss_or_schedule_is_refused_before_anything_is_written(tmp_path, field, value):
    cfg = _config(tmp_path / "run", 1, 2)
    setattr(cfg, field, value)
    with pytest.raises(ValueError, match=f"{field}: expected one of"):
        train_stage(cfg, [], progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_resume_refuses_options_that_change_the_run(image_folder, tmp_path):
    data = ColorImages(list_images(image_folder), SIZE)
    first = _config(tmp_path / "run", 1, 2)
    first.lr_schedule = "cosine"
    train_stage(first, data, progress=False)
    saved = (tmp_path / "run" / "latest.pt").read_bytes()
    for field, value in (("loss", "l2"), ("steps", 4), ("lr", 1e-4)):
        changed = _config(tmp_path / "run", 1, 2)
        changed.lr_schedule = "cosine"
        setattr(changed, field, value)
        with pytest.raises(ValueError, match=f"received changes {field} "):
            train_stage(changed, data, resume=True, progress=False)
    assert (tmp_path / "run" / "latest.pt").read_bytes() == saved


def test_too_few_samples_for_a_batch_are_refused(image_folder, tmp_path):
    data = ColorImages(list_images(image_folder)[:3], SIZE)
    with pytest.raises(ValueError, match="expected at least batch_size=4 samples, received 3"):
        train_stage(_config(tmp_path / "run", 1, 2), data, progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_background_logit_starts_fusion_at_the_full_image_network(image_folder, tmp_path):
    files = list_images(image_folder)
    data = ColorImages(files, SIZE)
    train_stage(_config(tmp_path / "s1", 1, 4), data, progress=False)
    boxes = {f.name: np.array([[4.0, 4.0, 30.0, 28.0], [10.0, 2.0, 46.0, 38.0]]) for f in files}
    s1 = str(tmp_path / "s1" / "latest.pt")
    train_stage(_config(tmp_path / "s2", 2, 1, s1), InstanceCrops(files, SIZE), progress=False)
    scenes = FusionScenes(files, SIZE, boxes=boxes)
    scene = scenes[0]
    size = tuple(int(v) for v in scene["size"])
    gaps = {}
    for logit in (0.0, 8.0):
        cfg = _config(tmp_path / f"s3_{logit}", 3, 1, str(tmp_path / "s2" / "latest.pt"))
        cfg.lr, cfg.background_logit = 0.0, logit
        net = train_stage(cfg, scenes, collate=list_collate, progress=False)
        with torch.no_grad():
            placements = instance_placements(scene["boxes"].numpy(), size, SIZE)
            fused = net.colorize(scene["l"][None], crops=scene["crops"], placements=placements)
            full = net.colorize(scene["l"][None])
        gaps[logit] = (fused.ab - full.ab).abs().mean().item()
    # the reference's init scales the full features by ~1/(N+1) outside the boxes
    assert gaps[8.0] < 0.1 * gaps[0.0]


@pytest.mark.slow
def test_class_loss_falls_and_only_colourful_samples_count(image_folder, tmp_path):
    from instacolor.models.classes import class_prior
    from instacolor.train.losses import class_loss

    data = ColorImages(list_images(image_folder), SIZE, augment=False)
    ab = torch.stack([data[i]["ab"] for i in range(len(data))])
    config = _config(tmp_path, 1, 30)
    config.class_weight, config.lr = 1.0, 3e-3
    config.class_prior = class_prior(ab * 110).tolist()
    train_stage(config, data, progress=False)
    losses = _losses(tmp_path)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    gray = torch.zeros(2, 2, SIZE, SIZE)  # nearly gray targets teach nothing
    logits = torch.randn(2, 529, SIZE // 4, SIZE // 4, requires_grad=True)
    zero = class_loss(logits, gray, None)
    assert zero.item() == 0.0 and zero.requires_grad


@pytest.mark.slow
def test_fusion_from_full_copies_the_new_full_network_and_keeps_the_weight_layers(
    image_folder, tmp_path
):
    files = list_images(image_folder)
    data = ColorImages(files, SIZE)
    s1 = str(tmp_path / "s1" / "latest.pt")
    train_stage(_config(tmp_path / "s1", 1, 2), data, progress=False)
    s1b = _config(tmp_path / "s1b", 1, 2, s1)  # a later stage-1 network
    later = train_stage(s1b, data, progress=False)
    s2 = _config(tmp_path / "s2", 2, 1, s1)
    train_stage(s2, InstanceCrops(files, SIZE), progress=False)
    s3 = _config(tmp_path / "s3", 3, 1, str(tmp_path / "s2" / "latest.pt"))
    first = train_stage(s3, FusionScenes(files, SIZE), collate=list_collate, progress=False)
    cfg = _config(tmp_path / "s3b", 3, 1, str(tmp_path / "s3" / "latest.pt"))
    cfg.init_full, cfg.fusion_from_full, cfg.lr = str(tmp_path / "s1b" / "latest.pt"), True, 0.0
    again = train_stage(cfg, FusionScenes(files, SIZE), collate=list_collate, progress=False)
    assert torch.equal(again.fusion.model3[0].weight, later.full.model3[0].weight)
    assert torch.equal(again.fusion.model_class[0].weight, later.full.model_class[0].weight)
    w = again.fusion.weight_layer_at("conv3_3").simple_bg_conv[0].weight
    assert torch.equal(w, first.fusion.weight_layer_at("conv3_3").simple_bg_conv[0].weight)
    bad = _config(tmp_path / "bad", 1, 1)
    bad.fusion_from_full = True
    with pytest.raises(ValueError, match="fusion_from_full and instance_from_full are for stage 3"):
        train_stage(bad, data, progress=False)
