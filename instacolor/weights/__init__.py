"""Named weights as data: a registry, loading with architecture checks, the cache.

``weights`` arguments across instacolor accept:

* a registered name (see :func:`list_weights`; ``"default"`` is an alias),
* a path to an instacolor ``.safetensors`` file,
* a path to an InstColorization checkpoint folder (``latest_net_G.pth``,
  ``latest_net_GComp.pth``, ``latest_net_GF.pth``),
* a path to a Zhang et al. ``siggraph17`` ``.pth`` file (full-image network only).

Registered files live in the cache directory, ``$INSTACOLOR_CACHE`` or
``~/.cache/instacolor``, under ``<name>/<file>``. A missing file is downloaded from
its official URL when the entry has one; the download is verified against the
entry's sha256 (a full digest or, as torch.hub names files, a prefix of one) before it
is moved into place, so the cache never holds a partial or wrong file. Offline, the
error names the file, where to put it and where to get it.

Entries published inside a zip archive (InstColorization's ``checkpoints.zip`` on
Google Drive) are downloaded, unzipped and installed as a whole folder by
:mod:`instacolor.weights.official`; having no upstream sha256, their digests are recorded on
first download and checked on every later load.

The package: :mod:`~instacolor.weights.registry` (the named weights, a data table),
:mod:`~instacolor.weights.formats` (checkpoint folders, siggraph17 files, instacolor
safetensors), :mod:`~instacolor.weights.download` (the cache, verified downloads),
:mod:`~instacolor.weights.official` (InstColorization's archive) and
:mod:`~instacolor.weights.loading` (:func:`load_weights`). The names below are its public
ones; everything else is imported from its module.

Example:
    >>> from instacolor.weights import list_weights, get_entry
    >>> "siggraph17" in list_weights()
    True
    >>> get_entry("siggraph17").architecture
    'siggraph17'
"""

from instacolor.weights.download import WeightFile, cache_dir, sha256_file
from instacolor.weights.formats import (
    load_safetensors,
    read_safetensors_metadata,
    save_safetensors,
)
from instacolor.weights.loading import LoadedWeights, load_weights, weights_digest
from instacolor.weights.registry import (
    DEFAULT_WEIGHTS,
    REGISTRY,
    WeightsEntry,
    get_entry,
    list_weights,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "REGISTRY",
    "LoadedWeights",
    "WeightFile",
    "WeightsEntry",
    "cache_dir",
    "get_entry",
    "list_weights",
    "load_safetensors",
    "load_weights",
    "read_safetensors_metadata",
    "save_safetensors",
    "sha256_file",
    "weights_digest",
]
