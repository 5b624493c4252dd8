"""COCO-style annotations to :class:`~instacolor.structures.Instances`.

Accepts what archivists and COCO tools hand over for ONE image: a list of annotation
dicts (``bbox`` as XYWH in pixels, ``category_id``, optional ``segmentation`` as
polygons or RLE, optional ``score``), or a dict holding such a list under
``"annotations"``. Polygons and RLE (compressed or not) are decoded to masks with
pycocotools; category ids map to :mod:`instacolor.labels` (unknown ids raise).

Example:
    >>> from instacolor.io.coco import instances_from_coco
    >>> ann = [{"bbox": [10, 20, 30, 40], "category_id": 1}]
    >>> inst = instances_from_coco(ann, image_size=(100, 100))
    >>> inst.boxes.tolist(), inst.labels.tolist()
    ([[10.0, 20.0, 40.0, 60.0]], [0])
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from instacolor.errors import InputError
from instacolor.labels import label_from_coco_id
from instacolor.structures import Instances

__all__ = ["CocoAnnotations", "decode_segmentation", "instances_from_coco"]


def decode_segmentation(segmentation: Any, image_size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool mask of a COCO segmentation (polygons, RLE or compressed RLE)."""
    from pycocotools import mask as mask_utils  # on first use: import instacolor stays light

    h, w = image_size
    if not isinstance(segmentation, list | Mapping):
        raise InputError(
            f"segmentation: expected COCO polygons (a list of [x1, y1, x2, y2, ...] lists) or "
            f"RLE (a dict with 'size' and 'counts') for a {w}x{h} image, received "
            f"{type(segmentation).__name__}; fix the annotation or leave 'segmentation' out"
        )
    try:
        if isinstance(segmentation, list):
            rles = mask_utils.frPyObjects(segmentation, h, w)
            rle = mask_utils.merge(rles) if isinstance(rles, list) else rles
        elif isinstance(segmentation.get("counts"), list):
            rle = mask_utils.frPyObjects(dict(segmentation), h, w)
        else:
            rle = dict(segmentation)
            if isinstance(rle["counts"], str):
                rle["counts"] = rle["counts"].encode("ascii")
        return mask_utils.decode(rle).astype(bool)
    except (TypeError, KeyError, ValueError, IndexError) as exc:  # from pycocotools
        raise InputError(
            f"segmentation: expected COCO polygons or RLE for a {w}x{h} image, could not "
            f"decode it ({type(exc).__name__}: {exc})"
        ) from exc


def instances_from_coco(
    annotations: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    image_size: Sequence[int],
    *,
    with_masks: bool = True,
) -> Instances:
    """Instances of one image from its COCO annotations.

    Args:
        annotations: list of annotation dicts, or a dict with an ``"annotations"`` list.
        image_size: ``(H, W)`` of the image.
        with_masks: decode ``segmentation`` to masks (when every annotation has one).

    Returns:
        :class:`Instances` with boxes clipped to the image; crowd annotations
        (``iscrowd=1``) are kept, as their boxes still locate objects.
    """
    if isinstance(annotations, Mapping):
        if "annotations" not in annotations:
            raise InputError(
                "COCO annotations: expected a list of annotation dicts or a dict with an "
                f"'annotations' list, received a dict with keys {sorted(annotations)[:6]}"
            )
        annotations = annotations["annotations"]
    h, w = (int(v) for v in image_size)
    boxes, labels, scores, masks = [], [], [], []
    for i, ann in enumerate(annotations):
        if not isinstance(ann, Mapping) or "bbox" not in ann or "category_id" not in ann:
            raise InputError(
                f"COCO annotation {i}: expected a dict with 'bbox' [x, y, w, h] and "
                f"'category_id', received {ann!r:.120}"
            )
        try:
            x, y, bw, bh = (float(v) for v in ann["bbox"])
            category, score = int(ann["category_id"]), float(ann.get("score", 1.0))
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"COCO annotation {i}: expected 'bbox' as four numbers [x, y, w, h], an integer "
                f"'category_id' and a numeric 'score', received bbox={ann['bbox']!r:.60}, "
                f"category_id={ann['category_id']!r:.20}, score={ann.get('score')!r:.20}"
            ) from exc
        boxes.append((x, y, x + bw, y + bh))
        labels.append(label_from_coco_id(category))
        scores.append(score)
        if with_masks and ann.get("segmentation") is not None:
            masks.append(decode_segmentation(ann["segmentation"], (h, w)))
    use_masks = with_masks and len(masks) == len(boxes) and len(boxes) > 0
    return Instances.from_boxes(
        np.asarray(boxes, np.float64).reshape(-1, 4),
        (h, w),
        scores=scores,
        labels=np.asarray(labels, np.int64),
        masks=np.stack(masks) if use_masks else None,
    )


class CocoAnnotations:
    """A COCO instances file (or dict) indexed by image, for given-instance colorization.

    Archivists with their own annotations, and evaluation on COCO, hand the pipeline a
    whole ``instances_*.json``; this finds one image's annotations by file name (or
    path; its last part is matched) or image id.

    Args:
        source: path of a COCO instances JSON file, or the loaded dict (``images`` and
            ``annotations`` lists).

    Example:
        >>> coco = CocoAnnotations({"images": [{"id": 7, "file_name": "a.jpg",
        ...     "height": 40, "width": 60}], "annotations": [{"image_id": 7,
        ...     "bbox": [1, 2, 10, 10], "category_id": 18}]})
        >>> inst = coco.instances("scans/a.jpg")
        >>> len(inst), inst.image_size, inst.labels.tolist()
        (1, (40, 60), [16])
    """

    def __init__(self, source: str | os.PathLike | Mapping[str, Any]) -> None:
        if isinstance(source, Mapping):
            data, origin = source, "COCO dict"
        else:
            origin = str(source)
            try:
                data = json.loads(Path(source).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InputError(
                    f"COCO annotations {origin}: expected a readable COCO instances JSON file "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
        if not isinstance(data, Mapping) or not isinstance(data.get("images"), list):
            raise InputError(
                f"COCO annotations {origin}: expected a dict with 'images' and 'annotations' "
                "lists (a COCO instances file); for one image's annotations pass them "
                "directly as instances="
            )
        self.origin = origin
        try:
            self.images: dict[int, Mapping[str, Any]] = {int(i["id"]): i for i in data["images"]}
            self._by_name = {Path(i["file_name"]).name: int(i["id"]) for i in data["images"]}
            self._anns: dict[int, list[Mapping[str, Any]]] = {k: [] for k in self.images}
            for ann in data.get("annotations", []):
                self._anns.setdefault(int(ann["image_id"]), []).append(ann)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"COCO annotations {origin}: expected every image to have an integer 'id' and a "
                f"'file_name', and every annotation an integer 'image_id' "
                f"({type(exc).__name__}: {exc}); fix or regenerate the file"
            ) from exc

    def __len__(self) -> int:
        return len(self.images)

    def image_id(self, image: str | os.PathLike | int) -> int:
        """The id of an image given by id, file name or path."""
        if isinstance(image, int | np.integer) and int(image) in self.images:
            return int(image)
        key = Path(str(image)).name
        if key in self._by_name:
            return self._by_name[key]
        raise InputError(
            f"COCO annotations {self.origin}: no image {str(image)!r} (expected one of its "
            f"{len(self.images)} images' file names or ids, e.g. "
            f"{next(iter(self._by_name), 'none')!r})"
        )

    def annotations(self, image: str | os.PathLike | int) -> list[Mapping[str, Any]]:
        """The raw annotation dicts of one image."""
        return list(self._anns.get(self.image_id(image), []))

    def instances(self, image: str | os.PathLike | int, *, with_masks: bool = True) -> Instances:
        """:class:`Instances` of one image (see :func:`instances_from_coco`)."""
        info = self.images[self.image_id(image)]
        size = (int(info["height"]), int(info["width"]))
        return instances_from_coco(self.annotations(image), size, with_masks=with_masks)
