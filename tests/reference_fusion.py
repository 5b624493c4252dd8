"""A one-crop-at-a-time transcription of InstColorization's fusion, for tests only.

Written from the published description (Su et al., CVPR 2020, the fusion module): each instance
is processed in a Python loop with ``F.interpolate`` + ``F.pad``, exactly the shape of
the reference code, so the vectorised implementation can be checked against it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from instacolor.models.fusion import FusionGenerator
from instacolor.models.generator import FUSION_SCALE_DIVISOR, ColorGenerator
from instacolor.models.network import network_input


def reference_weight_layer(layer, inst_feat, bg_feat, box_info):
    """Fuse one point: ``inst_feat`` (N, C, s, s), ``bg_feat`` (1, C, S, S), boxes (N, 6)."""
    logits, feats = [], []
    union = torch.zeros_like(bg_feat)[:1, :1]
    for i in range(inst_feat.shape[0]):
        crop = inst_feat[i : i + 1]
        left, right, top, bottom, w, h = (int(v) for v in box_info[i])
        logit = layer.simple_instance_conv(crop)
        logits.append(
            F.pad(F.interpolate(logit, size=(h, w), mode="bilinear"), (left, right, top, bottom))
        )
        feats.append(
            F.pad(F.interpolate(crop, size=(h, w), mode="bilinear"), (left, right, top, bottom))
        )
        box = torch.zeros_like(union)
        box[0, 0, top : top + h, left : left + w] = 1.0
        union = torch.clamp(union + box, 0.0, 1.0)
    logits.append(layer.simple_bg_conv(bg_feat) + (1 - union) * 100000.0)
    weights = torch.softmax(torch.cat(logits, 1), 1)
    feats.append(bg_feat)
    out = (torch.cat(feats, 0) * weights.permute(1, 0, 2, 3)).sum(0, keepdim=True)
    return out, weights[0]


def reference_forward(
    instance_net: ColorGenerator,
    fusion_net: FusionGenerator,
    full_l,
    crops_l,
    box_infos,
    mask_value=-0.5,
):
    """Instance net one crop at a time, then the fusion net with the looped fusion.

    Args:
        full_l: (1, 1, S, S) normalised L; crops_l: (N, 1, S, S).
        box_infos: {divisor: (N, 6) placements}.

    Returns:
        (ab (1, 2, S, S), [weights (N + 1, S_i, S_i) per point]).
    """
    # One forward per crop; conv8_up/conv9_up/conv10_up come back rectified by the next
    # block's in-place ReLU, exactly as the reference's instance network stores them.
    per_crop = [
        instance_net(network_input(crops_l[i : i + 1], mask_value)) for i in range(crops_l.shape[0])
    ]
    weights = []

    def hook(name, feature):
        inst = torch.cat([o.feature(name) for o in per_crop])
        fused, w = reference_weight_layer(
            fusion_net.weight_layer_at(name), inst, feature, box_infos[FUSION_SCALE_DIVISOR[name]]
        )
        weights.append(w)
        return fused

    out = fusion_net(network_input(full_l, mask_value), hook)
    return out.ab, weights
