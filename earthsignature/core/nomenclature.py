"""The land-cover nomenclatures: CORINE Land Cover level 3 (the EEA legend shipped as package data) and
its level-2 and level-1 rollups, BigEarthNet-19, HRL, Urban Atlas and burnt areas.

Every nomenclature other than CLC level 3 is defined by which CLC level-3 codes each of its classes
covers, so mapping a CLC mask or a CLC model's prediction onto it is a table lookup. The class record
and the ``Nomenclature`` type are in ``core.classes``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from earthsignature.core.classes import RGB, LandCoverClass, Nomenclature, UnknownClassError

#: Value of BigEarthNet v2 reference maps (and of our masks before mapping) where CLC has no data.
CLC_NODATA_CODE = 999
#: Non-class grid values of EEA CLC rasters: NODATA, unclassified land, unclassified water, fill.
CLC_NON_CLASS_GRID_CODES = (48, 49, 50, 255)


# --- CLC level 3 and its rollups -------------------------------------------------------------------


@dataclass(frozen=True)
class _LegendRow:
    grid_code: int
    code: int
    label1: str
    label2: str
    label3: str
    color: RGB


@cache
def _legend() -> tuple[_LegendRow, ...]:
    text = resources.files("earthsignature.core").joinpath("resources/clc_legend.csv").read_text("utf-8")
    rows = []
    for row in csv.DictReader(text.splitlines()):
        if not row["CLC_CODE"] or not row["RGB"]:  # NODATA / unclassified rows carry no class
            continue
        r, g, b = (int(v) for v in row["RGB"].split("-"))
        rows.append(
            _LegendRow(int(row["GRID_CODE"]), int(row["CLC_CODE"]), row["LABEL1"], row["LABEL2"],
                       row["LABEL3"], (r, g, b))
        )
    return tuple(rows)


def _rollup(level: int) -> Nomenclature:
    """CLC level 1 or 2: a class per distinct code prefix; its color is its first member's (as the EEA
    colors level-1 and level-2 maps), its name the legend's label."""
    groups: dict[int, list[_LegendRow]] = {}
    for row in _legend():
        groups.setdefault(row.code // 10 ** (3 - level), []).append(row)
    classes = tuple(
        LandCoverClass(
            code=code,
            name=(rows[0].label1 if level == 1 else rows[0].label2),
            color=rows[0].color,
            index=i,
            clc_codes=tuple(r.code for r in rows),
        )
        for i, (code, rows) in enumerate(groups.items())
    )
    return Nomenclature(f"clc_level{level}", classes, f"CORINE Land Cover level {level}")


@cache
def clc_level3() -> Nomenclature:
    classes = tuple(
        LandCoverClass(r.code, r.label3, r.color, i, (r.code,), r.grid_code) for i, r in enumerate(_legend())
    )
    return Nomenclature("clc_level3", classes, "CORINE Land Cover level 3 (44 classes)")


@cache
def clc_level2() -> Nomenclature:
    return _rollup(2)


@cache
def clc_level1() -> Nomenclature:
    return _rollup(1)


def rollup_code(code: int, level: int) -> int:
    """The level-1 or level-2 code that a CLC level-3 code belongs to (``312 -> 31 -> 3``)."""
    clc_level3().by_code(code)  # validates
    if level not in (1, 2, 3):
        raise ValueError(f"CLC levels are 1, 2 and 3, not {level}")
    return int(code) // 10 ** (3 - level)


# --- Nomenclatures defined as groups of CLC level-3 codes -----------------------------------------


def _grouped(
    name: str, description: str, groups: Sequence[tuple[int, str, Iterable[int]]],
    colors: Sequence[RGB] | None = None,
) -> Nomenclature:
    """A nomenclature whose classes cover CLC level-3 codes; colors default to the first member's."""
    level3 = clc_level3()
    classes = []
    for i, (code, label, members) in enumerate(groups):
        members = tuple(members)
        for member in members:
            level3.by_code(member)  # a typo in a table below fails at import, loudly
        color = colors[i] if colors else level3.by_code(members[0]).color
        classes.append(LandCoverClass(code, label, color, i, members))
    return Nomenclature(name, tuple(classes), description)


@cache
def bigearthnet19() -> Nomenclature:
    """The 19-class nomenclature of BigEarthNet (Sumbul et al. 2021), as groups of CLC codes.

    CLC classes that BigEarthNet-19 drops (roads, ports, airports, mines, dumps, construction,
    urban green, sport, bare rock, burnt areas, intertidal flats, glaciers) map to the ignore index.
    """
    return _grouped("bigearthnet19", "BigEarthNet 19-class nomenclature", [
        (1, "Urban fabric", (111, 112)),
        (2, "Industrial or commercial units", (121,)),
        (3, "Arable land", (211, 212, 213)),
        (4, "Permanent crops", (221, 222, 223, 241)),
        (5, "Pastures", (231,)),
        (6, "Complex cultivation patterns", (242,)),
        (7, "Land principally occupied by agriculture, with significant areas of natural vegetation",
         (243,)),
        (8, "Agro-forestry areas", (244,)),
        (9, "Broad-leaved forest", (311,)),
        (10, "Coniferous forest", (312,)),
        (11, "Mixed forest", (313,)),
        (12, "Natural grassland and sparsely vegetated areas", (321, 333)),
        (13, "Moors, heathland and sclerophyllous vegetation", (322, 323)),
        (14, "Transitional woodland, shrub", (324,)),
        (15, "Beaches, dunes, sands", (331,)),
        (16, "Inland wetlands", (411, 412)),
        (17, "Coastal wetlands", (421, 422)),
        (18, "Inland waters", (511, 512)),
        (19, "Marine waters", (521, 522, 523)),
    ])


@cache
def hrl() -> Nomenclature:
    """Copernicus High Resolution Layers as 4 thematic classes, each the CLC level-3 codes it covers.

    The seed evaluates its CLC model on an HRL benchmark "mapped to their counterparts in CLC level 3"
    without listing the mapping; this is ours: imperviousness, tree cover, grassland, water & wetness.
    A CLC prediction scores as correct when it falls in the HRL class's group.
    """
    artificial = (111, 112, 121, 122, 123, 124, 131, 132, 133)
    return _grouped("hrl", "Copernicus High Resolution Layers (4 classes)", [
        (1, "Imperviousness", artificial),
        (2, "Tree cover", (311, 312, 313, 324, 244)),
        (3, "Grassland", (231, 321, 322, 141, 142)),
        (4, "Water and wetness", (411, 412, 421, 422, 423, 511, 512, 521, 522, 523)),
    ], colors=[(230, 0, 77), (0, 166, 0), (204, 242, 77), (0, 204, 242)])


#: Urban Atlas 2018 codes merged into the 19 evaluation classes (densities of urban fabric, road types,
#: land without current use, orchards).
URBAN_ATLAS_CODE_MERGES: dict[int, int] = {
    11210: 11200, 11220: 11200, 11230: 11200, 11240: 11200, 11300: 11200,
    12210: 12200, 12220: 12200, 12230: 12200,
    13400: 13300,
    25000: 22000,
}


@cache
def urban_atlas() -> Nomenclature:
    """Urban Atlas in 19 classes (codes after ``URBAN_ATLAS_CODE_MERGES``), each mapped to CLC level 3."""
    return _grouped("urban_atlas", "Copernicus Urban Atlas (19 classes)", [
        (11100, "Continuous urban fabric", (111,)),
        (11200, "Discontinuous urban fabric", (112,)),
        (12100, "Industrial, commercial, public, military and private units", (121,)),
        (12200, "Road and rail network and associated land", (122,)),
        (12300, "Port areas", (123,)),
        (12400, "Airports", (124,)),
        (13100, "Mineral extraction and dump sites", (131, 132)),
        (13300, "Construction sites and land without current use", (133,)),
        (14100, "Green urban areas", (141,)),
        (14200, "Sports and leisure facilities", (142,)),
        (21000, "Arable land (annual crops)", (211, 212, 213)),
        (22000, "Permanent crops", (221, 222, 223)),
        (23000, "Pastures", (231,)),
        (24000, "Complex and mixed cultivation patterns", (241, 242, 243, 244)),
        (31000, "Forests", (311, 312, 313)),
        (32000, "Herbaceous vegetation associations", (321, 322, 323, 324)),
        (33000, "Open spaces with little or no vegetation", (331, 332, 333, 334, 335)),
        (40000, "Wetlands", (411, 412, 421, 422, 423)),
        (50000, "Water", (511, 512, 521, 522, 523)),
    ])


@cache
def burnt_area() -> Nomenclature:
    """Binary burnt-area nomenclature (the seed's CERTH set); burnt is CLC 334 "Burnt areas"."""
    level3 = clc_level3()
    unburnt = tuple(c for c in level3.codes if c != 334)
    return _grouped("burnt_area", "Burnt areas (2 classes)", [
        (0, "Not burnt", unburnt),
        (1, "Burnt", (334,)),
    ], colors=[(200, 200, 200), (200, 30, 0)])


#: CLC level-3 codes the synthetic writers draw each crop with (a stand-in scene only: real crop maps come
#: from parcel declarations such as EuroCrops, not from CORINE); everything else is "Other".
CROP_SCENE_CODES = {
    "Winter cereals": (211,), "Spring cereals": (212,), "Maize": (213,), "Rapeseed": (241,), "Sunflower": (242,),
    "Sugar beet": (243,), "Potatoes": (244,), "Grassland": (231,), "Orchards": (222, 223), "Vineyards": (221,),
}


@cache
def crops() -> Nomenclature:
    """Crop types for the seed's third model ("fine-grained segmentation of crops"), the groups EuroCrops'
    Hierarchical Crop and Agriculture Taxonomy (HCAT) rolls up to in most pilot regions: winter and spring
    cereals, maize, rapeseed, sunflower, sugar beet, potatoes, grassland, orchards, vineyards, and other."""
    level3 = clc_level3()
    drawn = {code for codes in CROP_SCENE_CODES.values() for code in codes}
    other = tuple(c for c in level3.codes if c not in drawn)
    groups = [(code, name, members) for code, (name, members) in enumerate(CROP_SCENE_CODES.items(), start=1)]
    return _grouped("crops", "Crop types (11 classes, EuroCrops HCAT groups)", [*groups, (99, "Other", other)],
                    colors=[(230, 190, 60), (250, 230, 130), (255, 150, 0), (255, 255, 0), (255, 200, 30),
                            (170, 80, 140), (150, 100, 60), (140, 210, 90), (120, 150, 40), (150, 30, 110),
                            (210, 210, 210)])


_REGISTRY = {
    "clc_level3": clc_level3,
    "clc_level2": clc_level2,
    "clc_level1": clc_level1,
    "bigearthnet19": bigearthnet19,
    "hrl": hrl,
    "urban_atlas": urban_atlas,
    "burnt_area": burnt_area,
    "crops": crops,
}

NOMENCLATURE_NAMES = tuple(_REGISTRY)


def get_nomenclature(name: str) -> Nomenclature:
    """A nomenclature by its registry name (``clc_level3``, ``bigearthnet19``, ``burnt_area``...)."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise UnknownClassError(
            f"unknown nomenclature {name!r}; known: {', '.join(NOMENCLATURE_NAMES)}"
        ) from None
