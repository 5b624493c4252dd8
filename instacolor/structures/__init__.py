"""Typed values passed between the pipeline stages.

* :class:`Instances` - boxes ``(N, 4)`` XYXY in input pixels (x to the right, y down,
  ``x1``/``y1`` exclusive edges), scores, class labels and optional masks, with the
  image size they belong to. Fields are indexed together.
* :class:`SemanticMap` - a per-pixel label map in :mod:`instacolor.labels`' space.
* :class:`NetworkInputs` - what the networks take for one image at the working size
  (built by :func:`instacolor.models.inputs.prepare_inputs`), and :class:`NetOutput`
  - what a runtime (:mod:`instacolor.runtime`) returns for it.
* :class:`Decoding` - how the predicted chroma is decoded (one value with a spec form,
  ``"annealed-mean:0.38:0.75"``).
* :class:`ColorizeResult` - everything one colorization produced.

Example:
    >>> import numpy as np
    >>> from instacolor.structures import Instances
    >>> inst = Instances.from_boxes([[10, 10, 50, 40], [-5, 0, 20, 20]], image_size=(60, 80))
    >>> inst.boxes.tolist()  # the second box is clipped to the image
    [[10.0, 10.0, 50.0, 40.0], [0.0, 0.0, 20.0, 20.0]]
"""

from instacolor.structures.decoding import Decoding
from instacolor.structures.instances import Instances, SemanticMap, clip_boxes, integer_boxes
from instacolor.structures.network import NetOutput, NetworkInputs
from instacolor.structures.result import ColorizeResult

__all__ = [
    "ColorizeResult",
    "Decoding",
    "Instances",
    "NetOutput",
    "NetworkInputs",
    "SemanticMap",
    "clip_boxes",
    "integer_boxes",
]
