"""The one class record every part shares, and the ordered sets of classes built from it.

``LandCoverClass`` is the only shape a class has: training masks, checkpoints, model manifests, COG color
tables, the catalog, the wire and the pilots' client all carry it (as its plain-dict form where a format
needs one); ``ClassShare`` is a class with the pixels it covers in one map; a ``Nomenclature`` is an
ordered set of classes with lookups. The nomenclatures themselves are in ``core.nomenclature``.

A class has three identities that must not be confused:

* ``code``: the nomenclature's own code (CLC ``111``..``523``, level 2 ``11``..``52``, HRL ``1``..``4``...);
* ``index``: its position in the nomenclature, which is the model's output channel and the pixel value
  of class maps;
* ``grid_code``: the value stored in EEA CLC rasters (``1``..``44``), for CLC level 3 only.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RGB = tuple[int, int, int]
#: A class code as clients write it: ASCII digits only (``str.isdigit`` also takes ``²`` and ``٣``, which
#: ``int`` refuses), at most 9 of them (the wire's int32).
_CODE = re.compile(r"\s*([0-9]{1,9})\s*")
#: Size of the code lookup tables: every CLC code (and 999) fits below it.
_LUT_SIZE = 1000


class UnknownClassError(KeyError):
    """A code, name or grid value that the nomenclature does not define."""

    def __str__(self) -> str:  # KeyError quotes its argument; a message reads better plain.
        return str(self.args[0])


def class_code(token: str) -> int | None:
    """The class code a category token names (``"312"``, `` 312 ``), or None when it is a name."""
    match = _CODE.fullmatch(token)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class LandCoverClass:
    """One class of a nomenclature."""

    code: int
    name: str
    color: RGB
    index: int
    #: The CLC level-3 codes this class covers (``(code,)`` for CLC level 3 itself).
    clc_codes: tuple[int, ...] = ()
    #: Value in EEA CLC rasters; CLC level 3 only.
    grid_code: int | None = None

    @property
    def hex_color(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.color)

    def to_dict(self) -> dict[str, Any]:
        """The plain record that checkpoints and manifests store."""
        return {"index": self.index, "code": self.code, "name": self.name, "color": list(self.color),
                "clc_codes": list(self.clc_codes), "grid_code": self.grid_code}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], index: int | None = None) -> LandCoverClass:
        """Read a plain record; ``index`` when the record is known by its position (older records)."""
        grid_code = record.get("grid_code")
        return cls(int(record["code"]), str(record["name"]), tuple(int(v) for v in record["color"]),
                   int(record["index"] if index is None else index),
                   tuple(int(c) for c in record.get("clc_codes", ())),
                   None if grid_code is None else int(grid_code))


@dataclass(frozen=True)
class ClassShare:
    """A class of one segmentation map with the pixels it covers there."""

    land_cover: LandCoverClass
    pixel_count: int
    fraction: float  # of the map's valid (not no-data) pixels


@dataclass(frozen=True)
class Nomenclature:
    """An ordered set of classes with lookups by code, name, index and grid value."""

    name: str
    classes: tuple[LandCoverClass, ...]
    description: str = ""
    _by_code: dict[int, LandCoverClass] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, LandCoverClass] = field(init=False, repr=False, compare=False)
    _by_grid: dict[int, LandCoverClass] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for position, cls in enumerate(self.classes):
            if cls.index != position:
                raise ValueError(f"{self.name}: class {cls.code} has index {cls.index}, expected {position}")
        by_code = {c.code: c for c in self.classes}
        by_name = {c.name.casefold(): c for c in self.classes}
        if len(by_code) != len(self.classes) or len(by_name) != len(self.classes):
            raise ValueError(f"{self.name}: class codes and names must be unique")
        object.__setattr__(self, "_by_code", by_code)
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_by_grid", {c.grid_code: c for c in self.classes if c.grid_code})

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self) -> Iterator[LandCoverClass]:
        return iter(self.classes)

    @property
    def codes(self) -> list[int]:
        return [c.code for c in self.classes]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def colors(self) -> list[RGB]:
        return [c.color for c in self.classes]

    def by_code(self, code: int) -> LandCoverClass:
        try:
            return self._by_code[int(code)]
        except (KeyError, ValueError, TypeError):
            raise UnknownClassError(
                f"{self.name} has no class with code {code!r}; codes are {self.codes}"
            ) from None

    def by_name(self, name: str) -> LandCoverClass:
        """Case-insensitive lookup; the error suggests the closest names."""
        key = name.strip().casefold()
        if key in self._by_name:
            return self._by_name[key]
        close = difflib.get_close_matches(key, list(self._by_name), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(self._by_name[c].name) for c in close)}?" if close else ""
        raise UnknownClassError(f"{self.name} has no class named {name!r}{hint}")

    def by_index(self, index: int) -> LandCoverClass:
        if not 0 <= index < len(self.classes):
            raise UnknownClassError(f"{self.name} has no class index {index} (0..{len(self) - 1})")
        return self.classes[index]

    def by_grid_code(self, value: int) -> LandCoverClass:
        try:
            return self._by_grid[int(value)]
        except KeyError:
            raise UnknownClassError(
                f"{self.name} has no class with raster grid code {value!r}"
                + ("" if self._by_grid else " (it defines no grid codes)")
            ) from None

    def lookup(self, token: str | int) -> LandCoverClass:
        """A class from a code (int or digits) or a name: what API category filters accept."""
        code = token if isinstance(token, int) else class_code(token)
        return self.by_name(str(token)) if code is None else self.by_code(code)

    def search(self, words: str) -> list[LandCoverClass]:
        """Classes whose name contains every word given (case-insensitive), e.g. ``"burnt"``."""
        terms = words.casefold().split()
        return [c for c in self.classes if all(t in c.name.casefold() for t in terms)]

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """Index -> RGBA, the form rasterio's ``write_colormap`` takes for class-index rasters."""
        return {c.index: (*c.color, 255) for c in self.classes}

    def clc_lut(self, ignore_index: int = 255) -> np.ndarray:
        """Table mapping a CLC level-3 code to this nomenclature's class index.

        ``lut[mask]`` turns a CLC-coded mask (BigEarthNet v2 reference maps) into class indices;
        codes outside every class (and 999, no data) map to ``ignore_index``.
        """
        lut = np.full(_LUT_SIZE, ignore_index, dtype=np.int64)
        for cls in self.classes:
            lut[list(cls.clc_codes)] = cls.index
        return lut

    def to_records(self) -> list[dict[str, Any]]:
        """The classes as plain records (checkpoints, JSON output)."""
        return [c.to_dict() for c in self]

    @classmethod
    def from_records(cls, name: str, records: Sequence[Mapping[str, Any]]) -> Nomenclature:
        """Rebuild a nomenclature from plain records, listed by output channel."""
        return cls(name, tuple(LandCoverClass.from_dict(r, index=i) for i, r in enumerate(records)))


def map_clc_codes(codes: np.ndarray, target: Nomenclature, ignore_index: int = 255) -> np.ndarray:
    """Map an array of CLC level-3 codes to ``target`` class indices (unknown codes -> ignore)."""
    codes = np.asarray(codes)
    if codes.size and (codes.min() < 0 or codes.max() >= _LUT_SIZE):
        raise ValueError(f"CLC codes must lie in 0..{_LUT_SIZE - 1}, got {codes.min()}..{codes.max()}")
    return target.clc_lut(ignore_index)[codes]
