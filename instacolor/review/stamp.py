"""Record a review decision in an output's XMP (``icreview:`` namespace).

An accepted output gets one more ``rdf:Description`` in its XMP packet, in the
namespace :data:`REVIEW_NAMESPACE` (prefix ``icreview``): ``Decision``, ``Reviewer``,
``Time``, ``ReviewedSHA256`` (the file as the reviewer saw it), ``HintsSHA256`` and
``Comment``. An earlier review description is replaced. The provenance record and the
input's own metadata are kept as they were.

* PNG and TIFF are rewritten through :func:`~instacolor.io.archival.write.write_colorized`
  with their own decoded pixels (lossless, same bit depth, atomic);
* JPEG keeps its compressed data: only the XMP APP1 segment is replaced (atomic rename).

Example:
    >>> b"icreview:Decision" in review_xmp(None, {"decision": "accept", "reviewer": "ada",
    ...     "time": "2026-01-02T03:04:05Z", "reviewed_sha256": "a" * 64})
    True
"""

from __future__ import annotations

import os
import secrets
import struct
from dataclasses import replace
from pathlib import Path
from xml.dom import minidom

import imagecodecs
import numpy as np
import tifffile

from instacolor.errors import DecodeError, InputError
from instacolor.io.archival import read_scan
from instacolor.io.archival.provenance import provenance_xmp, read_provenance, read_xmp
from instacolor.io.archival.write import write_colorized
from instacolor.io.names import temp_name

__all__ = ["REVIEW_NAMESPACE", "read_review", "review_xmp", "stamp_review"]

#: Namespace of the review record in XMP (a name, not a web address), prefix ``icreview``.
REVIEW_NAMESPACE = "urn:instacolor:review:1.0/"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_EMPTY = f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{_RDF}"/></x:xmpmeta>'
_FIELDS = {
    "decision": "Decision",
    "reviewer": "Reviewer",
    "time": "Time",
    "reviewed_sha256": "ReviewedSHA256",
    "hints_sha256": "HintsSHA256",
    "comment": "Comment",
}
_XMP_HEAD = b"http://ns.adobe.com/xap/1.0/\x00"


def _document(packet: bytes | None) -> minidom.Document:
    if packet and b"<!DOCTYPE" not in packet and b"<!ENTITY" not in packet:
        try:
            doc = minidom.parseString(packet.strip(b"\x00 \t\r\n"))
            if doc.getElementsByTagNameNS(_RDF, "RDF"):
                return doc
        except Exception:  # expat raises several kinds: an unreadable packet is replaced
            pass
    return minidom.parseString(_EMPTY)


def review_xmp(packet: bytes | None, review: dict[str, str | None]) -> bytes:
    """``packet`` with its review description replaced by ``review`` (keys of ``_FIELDS``)."""
    doc = _document(packet)
    rdf = doc.getElementsByTagNameNS(_RDF, "RDF")[0]
    for desc in list(rdf.getElementsByTagNameNS(_RDF, "Description")):
        if any(n.namespaceURI == REVIEW_NAMESPACE for n in desc.childNodes):
            desc.parentNode.removeChild(desc)
    desc = doc.createElementNS(_RDF, "rdf:Description")
    desc.setAttribute("xmlns:icreview", REVIEW_NAMESPACE)
    desc.setAttributeNS(_RDF, "rdf:about", "")
    for key, name in _FIELDS.items():
        value = review.get(key)
        if value:
            element = doc.createElementNS(REVIEW_NAMESPACE, f"icreview:{name}")
            element.appendChild(doc.createTextNode(str(value)))
            desc.appendChild(element)
    rdf.appendChild(desc)
    return doc.documentElement.toxml().encode("utf-8")


def read_review(path: str | os.PathLike) -> dict[str, str] | None:
    """The review recorded in an output's XMP, or None (keys as in :func:`review_xmp`)."""
    packet = read_xmp(path)
    if not packet:
        return None
    found = {}
    for key, name in _FIELDS.items():
        nodes = _document(packet).getElementsByTagNameNS(REVIEW_NAMESPACE, name)
        if nodes:
            found[key] = "".join(n.data for n in nodes[0].childNodes if n.nodeType == n.TEXT_NODE)
    return found or None


def _pixels(path: Path) -> np.ndarray:
    """The output's RGB samples at their stored depth (PNG or TIFF)."""
    data = path.read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        rgb = imagecodecs.png_decode(data)
    else:
        rgb = tifffile.imread(path)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DecodeError(f"{path}: expected an RGB colorized output, received shape {rgb.shape}")
    return np.ascontiguousarray(rgb)


def _replace_jpeg_xmp(data: bytes, packet: bytes) -> bytes:
    """The JPEG ``data`` with its XMP APP1 segment replaced by ``packet``."""
    if len(packet) + len(_XMP_HEAD) + 2 > 0xFFFF:
        raise InputError("the XMP with the review exceeds one JPEG segment (64 KiB)")
    segment = b"\xff\xe1" + struct.pack(">H", len(_XMP_HEAD) + len(packet) + 2) + _XMP_HEAD + packet
    if data[:2] != b"\xff\xd8":
        raise DecodeError("expected a JPEG file (SOI marker)")
    kept, pos, insert_at = [data[:2]], 2, 1
    while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] not in (0xDA, 0xD9):
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        part = data[pos : pos + 2 + length]
        if not (data[pos + 1] == 0xE1 and part[4 : 4 + len(_XMP_HEAD)] == _XMP_HEAD):
            kept.append(part)
            if data[pos + 1] in (0xE0, 0xE1):
                insert_at = len(kept)
        pos += 2 + length
    kept.insert(insert_at, segment)
    return b"".join(kept) + data[pos:]


def _atomic_bytes(path: Path, data: bytes) -> None:
    temp = path.with_name(temp_name(path.name, secrets.token_hex(4)))
    try:
        with open(temp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def stamp_review(output: Path, source: Path, review: dict[str, str | None]) -> None:
    """Record ``review`` in ``output``'s XMP, atomically; pixels and provenance unchanged.

    Args:
        output: the colorized file (PNG, TIFF or JPEG written by instacolor).
        source: the input scan it was made from (its metadata is carried over again).
        review: ``decision``, ``reviewer``, ``time``, ``reviewed_sha256``, optional
            ``hints_sha256`` and ``comment``.

    Raises:
        DecodeError: the output has no instacolor provenance or cannot be decoded.
        InputError: the input changed since the output was made (sha256 mismatch).
    """
    provenance = read_provenance(output)
    if provenance is None:
        raise DecodeError(f"{output}: expected an instacolor output with provenance in its XMP")
    packet = review_xmp(read_xmp(output), review)
    if output.read_bytes()[:2] == b"\xff\xd8":
        full = provenance_xmp(provenance, packet)
        _atomic_bytes(output, _replace_jpeg_xmp(output.read_bytes(), full))
        return
    scan = read_scan(source, max_pixels=None)
    write_colorized(
        output, _pixels(output), provenance=provenance, source=replace(scan, xmp=packet),
        overwrite=True,
    )  # fmt: skip
