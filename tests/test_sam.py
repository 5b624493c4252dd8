"""segment-anything refinement: the real SAM modules with random weights, hash-checked files."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from instacolor.detection import DetectorConfig, SamRefiner, TorchvisionMaskRCNN
from instacolor.detection.sam import SAM_CHECKPOINTS, build_sam
from instacolor.errors import DownloadError, InputError, UntrainedWeightsWarning, WeightsError
from instacolor.structures import Instances
from instacolor.weights import WeightFile, sha256_file
from tests.conftest import closed_port

segment_anything = pytest.importorskip("segment_anything")
from segment_anything.modeling import (  # noqa: E402
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

H, W = 96, 128


def _tiny_sam(img: int = 64, seed: int = 0) -> Sam:
    """SAM's own modules at a small size (the official ones encode 1024x1024)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Sam(
            image_encoder=ImageEncoderViT(
                depth=2,
                embed_dim=32,
                img_size=img,
                mlp_ratio=2,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                num_heads=2,
                patch_size=16,
                qkv_bias=True,
                use_rel_pos=True,
                global_attn_indexes=[1],
                window_size=2,
                out_chans=32,
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=32,
                image_embedding_size=(img // 16, img // 16),
                input_image_size=(img, img),
                mask_in_chans=4,
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(depth=1, embedding_dim=32, mlp_dim=64, num_heads=2),
                transformer_dim=32,
                iou_head_depth=2,
                iou_head_hidden_dim=32,
            ),
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375],
        ).eval()


def _light(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    light = np.full((H, W), 40.0, np.float32)
    light[20:70, 30:90] = 85.0
    return light + rng.normal(0, 1.0, (H, W)).astype(np.float32)


def _instances(masks: bool = False) -> Instances:
    boxes = np.array([[10, 10, 60, 50], [30, 20, 120, 90], [0, 0, 128, 96]], np.float64)
    m = None
    if masks:
        m = np.zeros((3, H, W), bool)
        for i, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
            m[i, y0:y1, x0:x1] = True
    return Instances.from_boxes(boxes, (H, W), scores=[0.9, 0.8, 0.75], labels=[0, 2, 17], masks=m)


def test_refine_replaces_masks_and_keeps_boxes_scores_labels():
    refiner = SamRefiner(sam=_tiny_sam())
    given = _instances()
    out = refiner.refine(_light(), given)
    assert out.masks is not None and out.masks.shape == (3, H, W) and out.masks.dtype == bool
    np.testing.assert_array_equal(out.boxes, given.boxes)
    np.testing.assert_array_equal(out.scores, given.scores)
    np.testing.assert_array_equal(out.labels, given.labels)
    # a different SAM gives different masks: the masks come from the network
    other = SamRefiner(sam=_tiny_sam(seed=1)).refine(_light(), given)
    assert not np.array_equal(out.masks, other.masks)


def test_one_image_embedding_and_one_prompt_batch_per_image():
    sam = _tiny_sam()
    calls = {"encoder": [], "decoder": []}
    sam.image_encoder.register_forward_hook(lambda m, i, o: calls["encoder"].append(i[0].shape))
    sam.mask_decoder.register_forward_hook(lambda m, i, o: calls["decoder"].append(o[0].shape))
    SamRefiner(sam=sam).refine(_light(), _instances())
    assert len(calls["encoder"]) == 1
    assert len(calls["decoder"]) == 1 and calls["decoder"][0][0] == 3  # all boxes at once


def test_empty_sam_mask_keeps_the_detector_mask():
    sam = _tiny_sam()
    with torch.no_grad():  # a decoder whose mask logits are all negative: SAM finds nothing
        for p in sam.mask_decoder.output_hypernetworks_mlps.parameters():
            p.zero_()
        sam.mask_decoder.output_upscaling[-2].bias.fill_(-1.0)
        sam.mask_decoder.output_hypernetworks_mlps[0].layers[-1].bias.fill_(1.0)
    given = _instances(masks=True)
    out = SamRefiner(sam=sam).refine(_light(), given)
    np.testing.assert_array_equal(out.masks, given.masks)


def test_refine_no_instances_and_wrong_image():
    refiner = SamRefiner(sam=_tiny_sam())
    empty = Instances.from_boxes(np.zeros((0, 4)), (H, W))
    assert len(refiner.refine(_light(), empty)) == 0
    with pytest.raises(InputError, match=r"\(96, 128\)"):
        refiner.refine(np.zeros((50, 60), np.float32), _instances())
    with pytest.raises(InputError, match="no detector"):
        refiner.detect(_light())


def test_detect_wraps_a_real_detector():
    with pytest.warns(UntrainedWeightsWarning):
        detector = TorchvisionMaskRCNN(
            DetectorConfig(score_threshold=0.0, max_instances=3), weights=None, min_size=128
        )
    refiner = SamRefiner(detector, sam=_tiny_sam())
    found = refiner.detect(_light())
    assert found.backend.startswith("torchvision-maskrcnn_resnet50_fpn:random+sam-")
    n = len(found.instances)
    assert n <= 3
    if n:
        assert found.instances.masks.shape == (n, H, W)
    assert refiner.config.max_instances == 3


def test_unknown_model_is_rejected():
    with pytest.raises(InputError, match="vit_b"):
        build_sam("vit_x")


# ---------------------------------------------------------------- official checkpoints


@pytest.fixture(scope="module")
def vit_b_file(tmp_path_factory):
    """An official-architecture vit_b state dict (random weights, fp16 to halve the file)."""
    sam = build_sam("vit_b")
    state = {k: v.half() if v.is_floating_point() else v for k, v in sam.state_dict().items()}
    path = tmp_path_factory.mktemp("sam") / "sam_vit_b_test.pth"
    torch.save(state, path)
    return path, state


def test_official_file_downloads_verifies_and_loads(vit_b_file, http_root, cache):
    path, state = vit_b_file
    (http_root.root / path.name).write_bytes(path.read_bytes())
    file = WeightFile(path.name, sha256=sha256_file(path), url=f"{http_root.url}/{path.name}")
    refiner = SamRefiner(model="vit_b", checkpoint=file, progress=False)
    cached = cache / "segment-anything" / path.name
    assert cached.is_file() and refiner.weights_name == path.name
    loaded = refiner.sam.state_dict()
    key = "image_encoder.blocks.0.attn.qkv.weight"
    torch.testing.assert_close(loaded[key], state[key].float())
    # a second refiner reads the cache: no second request
    SamRefiner(model="vit_b", checkpoint=file, progress=False)
    assert http_root.server.requests == [f"/{path.name}"]


def test_download_with_wrong_hash_leaves_nothing(vit_b_file, http_root, cache):
    path, _ = vit_b_file
    (http_root.root / path.name).write_bytes(path.read_bytes())
    file = WeightFile(path.name, sha256="0" * 64, url=f"{http_root.url}/{path.name}")
    with pytest.raises(DownloadError, match="sha256"):
        SamRefiner(model="vit_b", checkpoint=file, progress=False)
    assert not any(p.is_file() for p in cache.rglob("*"))


def test_corrupted_cached_file_is_refused(vit_b_file, cache):
    path, _ = vit_b_file
    official = SAM_CHECKPOINTS["vit_b"]
    target = cache / "segment-anything" / official.name
    target.parent.mkdir(parents=True)
    target.write_bytes(path.read_bytes())  # right architecture, not the official bytes
    with pytest.raises(WeightsError, match="not the official one") as info:
        SamRefiner(model="vit_b", checkpoint="official", progress=False)
    assert official.url in str(info.value)
    assert target.read_bytes() == path.read_bytes()  # reported, not deleted behind the user


def test_offline_error_names_file_location_and_url(cache):
    url = f"http://127.0.0.1:{closed_port()}/sam_vit_b_01ec64.pth"
    file = WeightFile("sam_vit_b_01ec64.pth", sha256=SAM_CHECKPOINTS["vit_b"].sha256, url=url)
    with pytest.raises(DownloadError) as info:
        SamRefiner(model="vit_b", checkpoint=file, progress=False)
    message = str(info.value)
    assert str(cache / "segment-anything" / "sam_vit_b_01ec64.pth") in message
    assert url in message


def test_checkpoint_of_another_model_or_missing_path(tmp_path):
    small = tmp_path / "tiny.pth"
    torch.save(_tiny_sam().state_dict(), small)
    with pytest.raises(WeightsError, match="vit_b state dict"):
        SamRefiner(model="vit_b", checkpoint=small)
    with pytest.raises(WeightsError, match="not a file"):
        SamRefiner(model="vit_b", checkpoint=tmp_path / "missing.pth")


def test_random_weights_warn():
    with pytest.warns(UntrainedWeightsWarning):
        refiner = SamRefiner(model="vit_b", checkpoint=None)
    assert refiner.name == "sam-vit_b:random"
