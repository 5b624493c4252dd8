"""Reading and writing network weights: official checkpoints and instacolor safetensors.

Three formats load into :class:`~instacolor.models.network.InstColorNet`:

* an **InstColorization checkpoint folder** with ``latest_net_G.pth`` (instance),
  ``latest_net_GComp.pth`` (full image) and ``latest_net_GF.pth`` (fusion); a
  ``module.`` prefix (DataParallel) is stripped and every file loads strictly;
* a **siggraph17** file (Zhang et al. 2017): one generator, loaded as the full-image
  network with mask channel 0 in automatic mode;
* an **instacolor safetensors** file: all networks under ``full.``, ``instance.``,
  ``fusion.`` and ``semantic.`` prefixes, with metadata naming the architecture.

Every mismatch raises :class:`~instacolor.errors.WeightsError` naming the file, the
missing and unexpected keys and the widths involved; nothing loads partially.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from instacolor.errors import WeightsError
from instacolor.models.network import InstColorNet

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "GUIDANCE_ENCODER",
    "OFFICIAL_FILES",
    "infer_width",
    "load_official_folder",
    "load_safetensors",
    "load_siggraph17",
    "load_state_dict_strict",
    "read_torch_state_dict",
    "save_safetensors",
    "strip_module_prefix",
]

#: Files of an InstColorization checkpoint folder and the sub-network each fills.
OFFICIAL_FILES = {
    "latest_net_GComp.pth": "full",
    "latest_net_G.pth": "instance",
    "latest_net_GF.pth": "fusion",
}
FORMAT = "instacolor"
FORMAT_VERSION = "1"
_MASK_VALUE = {"instcolor": -0.5, "siggraph17": 0.0}
#: ``encoder`` metadata of weights whose generators the pretrained encoder guides.
GUIDANCE_ENCODER = "efficientnet-lite0"


def strip_module_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a ``module.`` prefix (``nn.DataParallel``) from every key that has it."""
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}


def infer_width(state: Mapping[str, torch.Tensor], source: str | os.PathLike = "") -> int:
    """Generator width from ``model1.0.weight`` (``(width, 4, 3, 3)``)."""
    weight = state.get("model1.0.weight")
    if weight is None or weight.dim() != 4:
        raise WeightsError(
            f"{source}: expected a colorization generator state dict with key "
            f"'model1.0.weight' of shape (width, 4, 3, 3); received keys "
            f"{sorted(state)[:5]}... Is this an InstColorization or siggraph17 checkpoint?"
        )
    return int(weight.shape[0])


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.pth`` state dict safely (``weights_only``), prefix stripped."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: expected a file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise WeightsError(
            f"{path}: could not be read as a PyTorch checkpoint ({type(exc).__name__}: "
            f"{str(exc)[:200]}). The file is corrupt or not a state dict; download it again."
        ) from exc
    if isinstance(state, Mapping) and "state_dict" in state and len(state) < 8:
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise WeightsError(
            f"{path}: expected a state dict (name -> tensor), received {type(state).__name__}"
        )
    return strip_module_prefix(state)


def load_state_dict_strict(
    module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str | os.PathLike
) -> None:
    """Load ``state`` into ``module`` strictly, or raise a WeightsError that says why."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs network {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys {_few(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys {_few(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches {_few(shapes)}")
        raise WeightsError(
            f"{source} does not match the {type(module).__name__} it is loaded into: "
            + "; ".join(parts)
            + ". Check that the file is the right network (instance G, full GComp, fusion GF) "
            "and width."
        )
    module.load_state_dict(state, strict=True)


def _few(items: list[str], n: int = 6) -> str:
    return "[" + ", ".join(items[:n]) + (", ..." if len(items) > n else "") + "]"


def load_official_folder(folder: str | os.PathLike) -> InstColorNet:
    """Load an InstColorization checkpoint folder (three ``.pth`` files) strictly.

    Raises:
        WeightsError: a file is missing, unreadable, or its keys or shapes do not match.
    """
    folder = Path(folder)
    missing = [name for name in OFFICIAL_FILES if not (folder / name).is_file()]
    if missing:
        raise WeightsError(
            f"{folder}: expected an InstColorization checkpoint folder holding "
            f"{', '.join(OFFICIAL_FILES)}; missing {', '.join(missing)}"
        )
    states = {part: read_torch_state_dict(folder / name) for name, part in OFFICIAL_FILES.items()}
    widths = {part: infer_width(state, folder) for part, state in states.items()}
    if len(set(widths.values())) != 1:
        raise WeightsError(f"{folder}: the three networks have different widths {widths}")
    net = InstColorNet(widths["full"], mask_value=_MASK_VALUE["instcolor"])
    for name, part in OFFICIAL_FILES.items():
        load_state_dict_strict(getattr(net, part), states[part], folder / name)
    return net.eval()


def load_siggraph17(path: str | os.PathLike) -> InstColorNet:
    """Load Zhang et al.'s siggraph17 generator as a full-image-only network (mask 0)."""
    state = read_torch_state_dict(path)
    net = InstColorNet(infer_width(state, path), with_instances=False, mask_value=0.0)
    load_state_dict_strict(net.full, state, path)
    return net.eval()


def save_safetensors(
    net: InstColorNet,
    path: str | os.PathLike,
    *,
    name: str,
    dtype: torch.dtype = torch.float16,
    extra: Mapping[str, str] | None = None,
) -> Path:
    """Write ``net`` as an instacolor safetensors file (parameters cast to ``dtype``).

    Floating-point buffers (BatchNorm's running means and variances) are kept in at
    least float32: a few KiB, and rounding them to float16 cost the shipped full-image
    network 0.02 dB on stage 1's validator while float16 parameters cost nothing
    (docs/model-card.md). BatchNorm's ``num_batches_tracked`` counters stay int64.
    """
    params = {name for name, _ in net.named_parameters()}
    buffers = torch.promote_types(dtype, torch.float32)
    state = {
        k: (v.to(dtype if k in params else buffers) if v.is_floating_point() else v).contiguous()
        for k, v in net.state_dict().items()
    }
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "architecture": "instcolor" if net.with_instances else "siggraph17",
        "width": str(net.width),
        "mask_value": repr(float(net.mask_value)),
        **({"encoder": GUIDANCE_ENCODER} if net.guided else {}),
        **(dict(extra) if extra else {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, tmp, metadata=metadata)
    tmp.chmod(0o644)  # safetensors creates 0600; weights are meant to be shared and shipped
    os.replace(tmp, path)
    return path


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata header of a safetensors file (no tensors are read)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or n > 100_000_000:
                raise _not_safetensors(path, f"header length {n}")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as exc:  # ValueError: bad UTF-8 or JSON
        raise _not_safetensors(path, str(exc)) from exc
    if not isinstance(header, dict):
        raise _not_safetensors(path, f"header is a JSON {type(header).__name__}, not an object")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise _not_safetensors(
            path, f"__metadata__ is a JSON {type(metadata).__name__}, not an object"
        )
    return {str(k): str(v) for k, v in metadata.items()}


def _not_safetensors(path: Path, reason: str) -> WeightsError:
    return WeightsError(
        f"{path}: expected a safetensors file (8-byte header length, then a JSON object), "
        f"received one that could not be read ({reason}); it is corrupt or not an "
        "instacolor weights file: fetch or export it again"
    )


def load_safetensors(path: str | os.PathLike) -> InstColorNet:
    """Load an instacolor safetensors file, checking its format and architecture."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: expected a file at {path}")
    meta = read_safetensors_metadata(path)
    if meta.get("format") != FORMAT:
        raise WeightsError(
            f"{path}: expected metadata format '{FORMAT}', received {meta.get('format')!r}; "
            "official .pth checkpoints load from their folder, not from safetensors"
        )
    arch = meta.get("architecture")
    if arch not in _MASK_VALUE:
        raise WeightsError(
            f"{path}: unknown architecture {arch!r}; expected one of {sorted(_MASK_VALUE)}"
        )
    try:
        state = load_file(path)
        width = int(meta["width"])
        mask_value = float(meta.get("mask_value", _MASK_VALUE[arch]))
    except (SafetensorError, KeyError, ValueError) as exc:
        raise WeightsError(f"{path}: corrupt instacolor weights file ({exc})") from exc
    encoder = meta.get("encoder")
    if encoder not in (None, GUIDANCE_ENCODER):
        raise WeightsError(
            f"{path}: unknown encoder {encoder!r}; expected {GUIDANCE_ENCODER!r} or none "
            "(a newer instacolor may read these weights)"
        )
    net = InstColorNet(
        width,
        with_instances=arch == "instcolor",
        mask_value=mask_value,
        guided=encoder is not None,
    )
    expected = net.state_dict()
    state = {k: v.to(expected[k].dtype) if k in expected else v for k, v in state.items()}
    load_state_dict_strict(net, state, f"{path} (metadata width {width})")
    return net.eval()
