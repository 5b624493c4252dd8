"""Provenance of colorized files: the :class:`Provenance` record and its XMP form.

Every output written by :func:`~instacolor.io.archival.write.write_colorized` carries
an XMP packet (the input's own XMP, when it had one, plus one ``rdf:Description``
added by instacolor) with:

* ``Iptc4xmpExt:DigitalSourceType`` = :data:`DIGITAL_SOURCE_TYPE` (IPTC: a composite
  of a photograph and content made by a trained algorithm);
* ``xmp:CreatorTool`` = ``"instacolor <version>"``;
* the ``instacolor:`` namespace (:data:`XMP_NAMESPACE`): ``Software``, ``Version``,
  ``Model``, ``WeightsSHA256``, ``InputSHA256``, ``Timestamp`` (UTC, ISO 8601) and,
  when given, ``Settings`` (how the colours were made: decoding, temperature, mix,
  saturation, working size, hints digest, as ``key=value`` pairs joined by ``;``).

Properties the new description supersedes (an older DigitalSourceType or
CreatorTool, ``tiff:Orientation``, whose pixels have been turned upright, and any
earlier ``instacolor:`` record) are removed from the input's descriptions.
:func:`read_provenance` reads the record back from a PNG, TIFF or JPEG file.

Example:
    >>> from instacolor.io.archival.provenance import Provenance, provenance_xmp, parse_provenance
    >>> record = Provenance(
    ...     model="instacolor-w16-v4", weights_sha256="a" * 64, input_sha256="b" * 64,
    ...     version="0.1.0", timestamp="2026-01-02T03:04:05Z")
    >>> packet = provenance_xmp(record)
    >>> b"compositeWithTrainedAlgorithmicMedia" in packet
    True
    >>> parse_provenance(packet) == record
    True
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from xml.dom import minidom
from xml.parsers.expat import ExpatError

from instacolor._version import __version__
from instacolor.errors import DecodeError, InputError
from instacolor.io.archival.decode import open_pillow, sniff_format

__all__ = [
    "DIGITAL_SOURCE_TYPE",
    "XMP_NAMESPACE",
    "Provenance",
    "parse_provenance",
    "provenance_xmp",
    "read_provenance",
    "read_xmp",
    "settings_text",
]

#: IPTC digital source type of a photograph colorized by a trained model.
DIGITAL_SOURCE_TYPE = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
)
#: Namespace of instacolor's XMP properties (a name, not a web address), prefix ``instacolor``.
XMP_NAMESPACE = "urn:instacolor:xmp:1.0/"

_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
_XMP_BASIC = "http://ns.adobe.com/xap/1.0/"
_TIFF = "http://ns.adobe.com/tiff/1.0/"
_PREFIXES = (("rdf", _RDF), ("Iptc4xmpExt", _IPTC_EXT), ("xmp", _XMP_BASIC))
_SUPERSEDED = {
    (_IPTC_EXT, "DigitalSourceType"),
    (_XMP_BASIC, "CreatorTool"),
    (_TIFF, "Orientation"),
}
#: Provenance field -> property name in the ``instacolor:`` namespace.
_FIELDS = {
    "software": "Software",
    "version": "Version",
    "model": "Model",
    "weights_sha256": "WeightsSHA256",
    "input_sha256": "InputSHA256",
    "timestamp": "Timestamp",
}
#: Optional fields (older files lack them) -> property name.
_OPTIONAL = {"settings": "Settings"}
_EMPTY_PACKET = f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{_RDF}"/></x:xmpmeta>'
_PACKET_HEAD = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_PACKET_TAIL = '\n<?xpacket end="w"?>'
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Where a colorized file came from; written into every output's metadata.

    Attributes:
        model: name of the weights (``Colorizer.loaded.name``).
        weights_sha256: hex SHA-256 of the weights file.
        input_sha256: hex SHA-256 of the source file (``ScanImage.sha256``).
        software: ``"instacolor"``.
        version: instacolor's version (default: the running one).
        timestamp: UTC time of colorization, ISO 8601 ``YYYY-MM-DDTHH:MM:SSZ``
            (default: now).
        digital_source_type: IPTC digital source type URI.
        settings: how the colours were made, ``key=value`` pairs joined by ``;``
            (:func:`settings_text`); empty when not recorded.
    """

    model: str
    weights_sha256: str
    input_sha256: str
    software: str = "instacolor"
    version: str = __version__
    timestamp: str = field(default_factory=_utc_now)
    digital_source_type: str = DIGITAL_SOURCE_TYPE
    settings: str = ""

    def __post_init__(self) -> None:
        for name in ("model", "software", "version", "digital_source_type"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"{name}: expected a non-empty string, received {value!r}")
        if not isinstance(self.settings, str):
            raise InputError(f"settings: expected a string, received {self.settings!r}")
        for name in ("weights_sha256", "input_sha256"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _SHA256.fullmatch(value):
                raise InputError(
                    f"{name}: expected 64 lowercase hex digits (a SHA-256), received {value!r}"
                )
        try:
            moment = datetime.fromisoformat(self.timestamp.replace("Z", "+00:00"))
        except (AttributeError, ValueError):
            moment = None
        if moment is None or moment.tzinfo is None:
            raise InputError(
                f"timestamp: expected ISO 8601 with a time zone such as '2026-01-02T03:04:05Z', "
                f"received {self.timestamp!r}"
            )

    @property
    def creator_tool(self) -> str:
        """``"<software> <version>"``, as written to the Software tag and xmp:CreatorTool."""
        return f"{self.software} {self.version}"

    def to_dict(self) -> dict[str, str]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


def _text(element: minidom.Element) -> str:
    return "".join(n.data for n in element.childNodes if n.nodeType == n.TEXT_NODE).strip()


def _elements(parent: minidom.Element) -> list[minidom.Element]:
    return [n for n in parent.childNodes if n.nodeType == n.ELEMENT_NODE]


def _parse(packet: bytes) -> minidom.Document | None:
    """Parse an XMP packet; None when it is not well-formed or declares a DTD."""
    data = packet.strip(b"\x00 \t\r\n")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:  # XMP never needs them: refuse entities
        return None
    try:
        return minidom.parseString(data)
    except (ExpatError, ValueError):
        return None


def _superseded(namespace: str | None, local: str | None) -> bool:
    return namespace == XMP_NAMESPACE or (namespace, local) in _SUPERSEDED


def provenance_xmp(provenance: Provenance, base: bytes | None = None) -> bytes:
    """XMP packet: ``base`` (the input's XMP, or an empty packet) plus the provenance.

    Args:
        provenance: the record to add.
        base: an XMP packet to keep (its superseded properties are removed, see the
            module docstring); an unreadable one is replaced with a ``UserWarning``.

    Returns:
        A UTF-8 XMP packet with ``<?xpacket?>`` wrapper.
    """
    doc = _parse(base) if base else None
    roots = doc.getElementsByTagNameNS(_RDF, "RDF") if doc is not None else []
    if base and not roots:
        warnings.warn(
            "the input's XMP packet is not well-formed XMP and is not carried over; the output "
            "gets a new packet with the provenance only",
            UserWarning,
            stacklevel=3,
        )
    if not roots:
        doc = minidom.parseString(_EMPTY_PACKET)
        roots = doc.getElementsByTagNameNS(_RDF, "RDF")
    rdf = roots[0]
    for desc in rdf.getElementsByTagNameNS(_RDF, "Description"):
        for attr in list(desc.attributes.values()):
            if _superseded(attr.namespaceURI, attr.localName):
                desc.removeAttributeNode(attr)
        for child in _elements(desc):
            if _superseded(child.namespaceURI, child.localName):
                desc.removeChild(child)
    desc = doc.createElementNS(_RDF, "rdf:Description")
    for prefix, namespace in (*_PREFIXES, ("instacolor", XMP_NAMESPACE)):
        desc.setAttribute(f"xmlns:{prefix}", namespace)
    desc.setAttributeNS(_RDF, "rdf:about", "")
    values = [
        (_IPTC_EXT, "Iptc4xmpExt:DigitalSourceType", provenance.digital_source_type),
        (_XMP_BASIC, "xmp:CreatorTool", provenance.creator_tool),
    ]
    values += [
        (XMP_NAMESPACE, f"instacolor:{p}", getattr(provenance, f)) for f, p in _FIELDS.items()
    ]
    values += [
        (XMP_NAMESPACE, f"instacolor:{p}", getattr(provenance, f))
        for f, p in _OPTIONAL.items()
        if getattr(provenance, f)
    ]
    for namespace, qualified, value in values:
        element = doc.createElementNS(namespace, qualified)
        element.appendChild(doc.createTextNode(value))
        desc.appendChild(element)
    rdf.appendChild(desc)
    return (_PACKET_HEAD + doc.documentElement.toxml() + _PACKET_TAIL).encode("utf-8")


def parse_provenance(packet: bytes | None) -> Provenance | None:
    """The :class:`Provenance` in an XMP packet, or None when it has none.

    Raises:
        DecodeError: the packet has an ``instacolor:`` record with missing or invalid
            fields (a damaged or edited file).
    """
    doc = _parse(packet) if packet else None
    if doc is None:
        return None
    found: dict[str, str] = {}
    for desc in doc.getElementsByTagNameNS(_RDF, "Description"):
        pairs = [(a.namespaceURI, a.localName, a.value) for a in desc.attributes.values()]
        pairs += [(e.namespaceURI, e.localName, _text(e)) for e in _elements(desc)]
        for namespace, local, value in pairs:
            if namespace == XMP_NAMESPACE or (namespace, local) == (_IPTC_EXT, "DigitalSourceType"):
                found[local] = value
    if not any(local in found for local in _FIELDS.values()):
        return None
    try:
        values = {f: found[p] for f, p in _FIELDS.items()}
        values.update({f: found[p] for f, p in _OPTIONAL.items() if p in found})
        return Provenance(**values, digital_source_type=found.get("DigitalSourceType", ""))
    except (KeyError, InputError) as exc:
        raise DecodeError(
            f"the instacolor provenance in this XMP is incomplete or invalid ({exc}); expected "
            f"all of {sorted(_FIELDS.values())} and a DigitalSourceType"
        ) from exc


def settings_text(**settings: object) -> str:
    """``key=value`` pairs joined by ``;`` for :attr:`Provenance.settings` (None left out).

    Example:
        >>> settings_text(decode="annealed-mean", temperature=0.38, mix=None)
        'decode=annealed-mean;temperature=0.38'
    """
    return ";".join(f"{k}={v}" for k, v in settings.items() if v is not None)


def read_xmp(path: str | os.PathLike) -> bytes | None:
    """The XMP packet of a PNG, TIFF (first page) or JPEG file, or None when it has none.

    Raises:
        InputError: ``path`` is not an existing file.
        DecodeError: the file is not a readable PNG, TIFF or JPEG.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{file}: expected an existing image file; there is no file at this path")
    with file.open("rb") as fh:
        fmt = sniff_format(fh.read(16))
        if fmt is None:
            raise DecodeError(f"{file}: expected a PNG, TIFF or JPEG file with XMP metadata")
        try:
            xmp = open_pillow(fh, fmt).info.get("xmp")
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise DecodeError(f"{file}: could not read the {fmt} metadata ({exc})") from exc
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return xmp or None


def read_provenance(path: str | os.PathLike) -> Provenance | None:
    """The instacolor :class:`Provenance` of an output file, or None when it has none.

    Example:
        ``read_provenance("photo.colorized.tif").input_sha256 == scan.sha256``
    """
    return parse_provenance(read_xmp(path))
