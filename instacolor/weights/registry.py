"""The registry of named weights: what each name means, where its files come from.

Weights are data: each :class:`WeightsEntry` names its architecture, width, files with
their sha256, source, licence, training size and default decoding;
:mod:`instacolor.weights` loads them with architecture and hash checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from instacolor.errors import WeightsError
from instacolor.structures.decoding import Decoding
from instacolor.weights.download import WeightFile
from instacolor.weights.formats import OFFICIAL_FILES
from instacolor.weights.official import INSTCOLORIZATION_ARCHIVE, ArchiveSource

__all__ = [
    "DEFAULT_WEIGHTS",
    "DEFAULT_WORKING_SIZE",
    "REGISTRY",
    "WeightsEntry",
    "get_entry",
    "list_weights",
    "unknown_weights_error",
]

#: What ``weights="default"`` means.
DEFAULT_WEIGHTS = "instacolor-w16-v4"
DEFAULT_WORKING_SIZE = 256  # InstColorization's and siggraph17's training size


@dataclass(frozen=True)
class WeightsEntry:
    """A named set of weights.

    Attributes:
        name: registry name.
        architecture: ``"instcolor"`` (full, instance and fusion networks) or
            ``"siggraph17"`` (full-image network only).
        width: generator width.
        files: the files that make up the weights.
        source: ``"download"`` (fetched on first use), ``"manual"`` (official host needs
            a browser), ``"package"`` (shipped inside instacolor) or ``"random"``
            (untrained).
        license: licence of the weights.
        mask_value: automatic-mode mask channel value.
        description: one line for ``list_weights``/``instacolor models``.
        homepage: where the weights are documented.
        working_size: the square size the networks run at unless the caller says
            otherwise: the size they were trained at (see docs/model-card.md).
        archive: for files published inside a zip archive, the archive and its folder
            that holds ``files`` (their digests are recorded on first download).
        decoding: the default :class:`~instacolor.structures.Decoding` (annealed-mean
            needs a trained classification head: the file's ``class_head`` metadata).
    """

    name: str
    architecture: str
    width: int
    files: tuple[WeightFile, ...]
    source: str
    license: str
    mask_value: float
    description: str
    homepage: str = ""
    working_size: int = DEFAULT_WORKING_SIZE
    archive: ArchiveSource | None = None
    decoding: Decoding = field(default_factory=Decoding)


REGISTRY: dict[str, WeightsEntry] = {
    e.name: e
    for e in (
        WeightsEntry(
            name="instacolor-w16-v4",
            architecture="instcolor",
            width=16,
            files=(
                WeightFile(
                    "instacolor-w16-v4.safetensors",
                    sha256="5764bbc80674abd88cb35a205fc0d496238dfcf7731164cf87d0b2d027311a32",
                ),
            ),
            source="package",
            license="research use only (trained on research-only photos; "
            "instacolor/data/WEIGHTS-LICENSE.md)",
            mask_value=-0.5,
            description="compact networks trained here on CPU (1-2 h per stage); "
            "plausible but washed-out colours, see docs/model-card.md",
            homepage="docs/model-card.md",
            working_size=128,
        ),
        WeightsEntry(
            name="instacolor-untrained-w16",
            architecture="instcolor",
            width=16,
            files=(),
            source="random",
            license="n/a",
            mask_value=-0.5,
            description="UNTRAINED compact networks (seed 0), for tests and benchmarks; "
            "outputs are not meaningful colors",
        ),
        WeightsEntry(
            name="instcolorization-coco-ffs",
            architecture="instcolor",
            width=64,
            files=tuple(WeightFile(n) for n in OFFICIAL_FILES),
            source="download",
            license="MIT",
            mask_value=-0.5,
            description="InstColorization (Su et al. CVPR 2020) coco_finetuned_mask_256_ffs "
            "(checkpoints.zip from Google Drive; needs pip install 'instacolor[official]')",
            homepage="https://github.com/ericsujw/InstColorization "
            f"(checkpoints.zip: {INSTCOLORIZATION_ARCHIVE.url})",
            archive=INSTCOLORIZATION_ARCHIVE,
        ),
        WeightsEntry(
            name="siggraph17",
            architecture="siggraph17",
            width=64,
            files=(
                WeightFile(
                    "siggraph17-df00044c.pth",
                    sha256="df00044c",
                    url="https://colorizers.s3.us-east-2.amazonaws.com/siggraph17-df00044c.pth",
                ),
            ),
            source="download",
            license="BSD-2-Clause",
            mask_value=0.0,
            description="Zhang et al. 2017 (siggraph17) automatic colorization, full image only",
            homepage="https://github.com/richzhang/colorization",
        ),
    )
}


def list_weights() -> list[str]:
    """Names of the registered weights."""
    return sorted(REGISTRY)


def get_entry(name: str) -> WeightsEntry:
    """The registry entry of ``name`` (``"default"`` resolves to :data:`DEFAULT_WEIGHTS`)."""
    key = DEFAULT_WEIGHTS if name == "default" else name
    if key not in REGISTRY:
        raise unknown_weights_error(name)
    return REGISTRY[key]


def unknown_weights_error(weights: object) -> WeightsError:
    """The error for a ``weights`` argument that names nothing known."""
    return WeightsError(
        f"unknown weights {str(weights)!r}: expected a registered name "
        f"({', '.join(list_weights())}), an existing .safetensors file, an InstColorization "
        "checkpoint folder or a siggraph17 .pth file"
    )
