"""How the predicted chroma is decoded: one value, :class:`Decoding`.

The same value travels through the API (``decode=``), the command line (``--decode
SPEC``), batch settings, results and manifests. It is written as a *spec*:

* ``"regression"`` - the regression head (as the reference decodes);
* ``"annealed-mean"`` - the classification head's annealed mean at the weights' default
  temperature and mix;
* ``"annealed-mean:T"`` - at temperature ``T`` (Zhang et al. 2016 use 0.38);
* ``"annealed-mean:T:MIX"`` - blended with the regression, ``MIX`` the annealed mean's
  weight in ``[0, 1]``.

Example:
    >>> Decoding.parse("annealed-mean:0.38:0.75")
    Decoding(mode='annealed-mean', temperature=0.38, mix=0.75)
    >>> Decoding.parse("annealed-mean:0.5").spec
    'annealed-mean:0.5:1'
    >>> Decoding().spec
    'regression'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from instacolor.errors import InputError

__all__ = ["DECODINGS", "DEFAULT_MIX", "DEFAULT_TEMPERATURE", "Decoding"]

#: Decodings of the predicted chroma.
DECODINGS = ("regression", "annealed-mean")
#: Zhang et al. 2016's annealed-mean temperature.
DEFAULT_TEMPERATURE = 0.38
#: Weight of the annealed mean in its blend with the regression (1: the annealed mean alone).
DEFAULT_MIX = 1.0

_SPEC_HELP = (
    "write 'regression', 'annealed-mean', 'annealed-mean:T' or 'annealed-mean:T:MIX' "
    "(e.g. 'annealed-mean:0.38:0.75')"
)


@dataclass(frozen=True)
class Decoding:
    """How the chroma is decoded.

    Attributes:
        mode: ``"regression"`` or ``"annealed-mean"``.
        temperature: annealed-mean temperature (> 0; 1 is the mean, -> 0 the mode).
        mix: weight of the annealed mean in ``[0, 1]``, the rest the regression's
            (``"annealed-mean"`` only; 1: the annealed mean alone, 0: the regression).

    Raises:
        InputError: an unknown mode, a temperature outside ``(0, 10]`` or a mix outside
            ``[0, 1]`` (or not a number).

    Example:
        >>> Decoding("annealed-mean", 0.38, mix=0.75).mix
        0.75
    """

    mode: str = "regression"
    temperature: float = DEFAULT_TEMPERATURE
    mix: float = DEFAULT_MIX

    def __post_init__(self) -> None:
        if self.mode not in DECODINGS:
            raise InputError(
                f"decode: expected one of {DECODINGS}, received {self.mode!r}; 'annealed-mean' "
                "needs weights with a trained classification head"
            )
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 10:
            raise InputError(
                f"temperature: expected a number in (0, 10], received {t!r}; Zhang et al. "
                "use 0.38, 1 is the plain mean"
            )
        m = self.mix
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m <= 1:
            raise InputError(
                f"mix: expected a number from 0 to 1, received {m!r}; use 1 for the annealed "
                "mean alone, 0 for the regression alone, in between (e.g. 0.75) for a blend"
            )

    @classmethod
    def parse(cls, spec: str, defaults: Decoding | None = None) -> Decoding:
        """The decoding a spec names; parts it leaves out come from ``defaults``.

        Args:
            spec: ``"regression"``, ``"annealed-mean"``, ``"annealed-mean:T"`` or
                ``"annealed-mean:T:MIX"``.
            defaults: temperature and mix for a spec that omits them (None: 0.38 and 1).

        Raises:
            InputError: a spec in another form, or a value out of range.

        Example:
            >>> Decoding.parse("annealed-mean", Decoding("regression", 0.5, 0.75))
            Decoding(mode='annealed-mean', temperature=0.5, mix=0.75)
        """
        if not isinstance(spec, str):
            raise InputError(
                f"decode: expected a Decoding or a spec string, received "
                f"{type(spec).__name__} {spec!r}; {_SPEC_HELP}"
            )
        base = defaults or cls()
        parts = spec.strip().split(":")
        mode, numbers = parts[0], parts[1:]
        if mode not in DECODINGS or len(numbers) > 2 or (mode == "regression" and numbers):
            raise InputError(f"decode: expected a decoding spec, received {spec!r}; {_SPEC_HELP}")
        try:
            values = [float(n) for n in numbers]
        except ValueError:
            raise InputError(
                f"decode: expected numbers after 'annealed-mean:', received {spec!r}; {_SPEC_HELP}"
            ) from None
        temperature = values[0] if values else base.temperature
        mix = values[1] if len(values) > 1 else base.mix
        return cls(mode, temperature, mix)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Decoding | None:
        """The decoding a result's or manifest's ``decode``/``temperature``/``mix`` name.

        Returns None when the record names no decoding (``decode`` absent or None).

        Raises:
            InputError: the record's values are not a valid decoding.

        Example:
            >>> Decoding.from_record({"decode": "annealed-mean", "temperature": 0.5, "mix": None})
            Decoding(mode='annealed-mean', temperature=0.5, mix=1.0)
        """
        mode = record.get("decode")
        if mode is None:
            return None
        temperature, mix = record.get("temperature"), record.get("mix")
        return cls(
            mode,
            DEFAULT_TEMPERATURE if temperature is None else temperature,
            DEFAULT_MIX if mix is None else mix,
        )

    @property
    def spec(self) -> str:
        """The spec that :meth:`parse` turns back into this value."""
        if self.mode == "regression":
            return "regression"
        return f"{self.mode}:{_number(self.temperature)}:{_number(self.mix)}"

    def record(self) -> dict[str, str | float | None]:
        """``{"decode", "temperature", "mix"}`` as results and manifests report them:
        temperature and mix are None for ``"regression"`` (they play no part there)."""
        annealed = self.mode != "regression"
        return {
            "decode": self.mode,
            "temperature": self.temperature if annealed else None,
            "mix": self.mix if annealed else None,
        }


def _number(x: float) -> str:
    """``x`` exactly (repr), without a trailing ``.0``."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text
