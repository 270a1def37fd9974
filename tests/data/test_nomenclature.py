"""The CLC nomenclature and the nomenclatures mapped onto it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from earthsignature.core.classes import Nomenclature, UnknownClassError, map_clc_codes
from earthsignature.core.nomenclature import (
    NOMENCLATURE_NAMES,
    bigearthnet19,
    burnt_area,
    clc_level1,
    clc_level2,
    clc_level3,
    get_nomenclature,
    hrl,
    rollup_code,
    urban_atlas,
)

SHARED_LEGEND = Path(__file__).resolve().parents[3] / "shared" / "data" / "clc_legend.csv"


def _eea_legend() -> list[dict[str, str]]:
    """The EEA legend: the shared copy when present, else the packaged one (identical, tested below)."""
    from importlib import resources

    text = resources.files("earthsignature.core").joinpath("resources/clc_legend.csv").read_text()
    return [row for row in csv.DictReader(text.splitlines()) if row["RGB"]]


@pytest.mark.skipif(not SHARED_LEGEND.exists(), reason="../shared is not beside this checkout")
def test_packaged_legend_is_the_eea_legend() -> None:
    from importlib import resources

    packaged = resources.files("earthsignature.core").joinpath("resources/clc_legend.csv").read_text()
    assert packaged == SHARED_LEGEND.read_text()


def test_level3_round_trips_every_code_name_color_and_grid_code() -> None:
    level3 = clc_level3()
    rows = _eea_legend()
    assert len(level3) == len(rows) == 44
    for index, row in enumerate(rows):
        cls = level3.by_code(int(row["CLC_CODE"]))
        assert cls.index == index
        assert cls.name == row["LABEL3"]
        assert cls.color == tuple(int(v) for v in row["RGB"].split("-"))
        assert level3.by_name(row["LABEL3"].upper()) is cls
        assert level3.by_grid_code(int(row["GRID_CODE"])) is cls
        assert level3.by_index(index) is cls
        assert level3.lookup(row["CLC_CODE"]) is cls


def test_known_colors_and_hex() -> None:
    assert clc_level3().by_code(312).hex_color == "#00a600"
    assert clc_level3().by_name("burnt areas").color == (0, 0, 0)
    assert clc_level3().colormap()[clc_level3().by_code(111).index] == (230, 0, 77, 255)


def test_rollups_to_level2_and_level1() -> None:
    level2, level1 = clc_level2(), clc_level1()
    assert len(level2) == 15 and len(level1) == 5
    assert level2.codes == [11, 12, 13, 14, 21, 22, 23, 24, 31, 32, 33, 41, 42, 51, 52]
    assert level1.names == ["Artificial surfaces", "Agricultural areas", "Forest and semi natural areas",
                            "Wetlands", "Water bodies"]
    assert level2.by_code(31).name == "Forests" and level2.by_code(31).clc_codes == (311, 312, 313)
    assert rollup_code(312, 2) == 31 and rollup_code(312, 1) == 3 and rollup_code(523, 3) == 523
    # every level-3 class belongs to exactly one class of each rollup
    for rolled in (level2, level1):
        covered = sorted(c for cls in rolled for c in cls.clc_codes)
        assert covered == sorted(clc_level3().codes)


def test_clc_mask_mapping_to_rollups_and_ignore() -> None:
    mask = np.array([[111, 112, 312], [523, 999, 335]])
    assert map_clc_codes(mask, clc_level1(), ignore_index=255).tolist() == [[0, 0, 2], [4, 255, 2]]
    level2 = clc_level2()
    expected = [[level2.by_code(11).index] * 2 + [level2.by_code(31).index],
                [level2.by_code(52).index, 255, level2.by_code(33).index]]
    assert map_clc_codes(mask, level2).tolist() == expected


def test_bigearthnet19_matches_the_published_mapping() -> None:
    ben = bigearthnet19()
    assert len(ben) == 19
    lut = ben.clc_lut(ignore_index=-1)
    assert lut[241] == ben.by_name("Permanent crops").index  # BigEarthNet folds 241 into permanent crops
    assert lut[333] == lut[321] == ben.by_name("Natural grassland and sparsely vegetated areas").index
    dropped = [122, 123, 124, 131, 132, 133, 141, 142, 332, 334, 335, 423]
    assert (lut[dropped] == -1).all()
    mapped = [c for c in clc_level3().codes if c not in dropped]
    assert (lut[mapped] >= 0).all() and len(mapped) == 32


def test_bigearthnet19_agrees_with_torchgeo() -> None:
    torchgeo = pytest.importorskip("torchgeo.datasets")
    ben = bigearthnet19()
    assert ben.names == list(torchgeo.BigEarthNet.class_sets[19])
    lut = ben.clc_lut(ignore_index=-1)
    for code, ordinal in torchgeo.BigEarthNetV2.clc_codes.items():
        assert lut[code] == ordinal


@pytest.mark.parametrize(("nomenclature", "size"), [(hrl, 4), (urban_atlas, 19), (burnt_area, 2)])
def test_evaluation_nomenclatures_cover_clc_codes_once(nomenclature, size) -> None:
    nom = nomenclature()
    assert len(nom) == size
    covered = [c for cls in nom for c in cls.clc_codes]
    assert len(covered) == len(set(covered)), "a CLC code may belong to one class only"
    assert set(covered) <= set(clc_level3().codes)


def test_burnt_area_is_clc_334() -> None:
    lut = burnt_area().clc_lut()
    assert lut[334] == 1 and lut[312] == 0 and lut[999] == 255
    assert [c.name for c in burnt_area().search("burnt")] == ["Not burnt", "Burnt"]


def test_lookups_fail_clearly() -> None:
    level3 = clc_level3()
    with pytest.raises(UnknownClassError, match="no class with code 999"):
        level3.by_code(999)
    with pytest.raises(UnknownClassError, match="did you mean 'Coniferous forest'"):
        level3.by_name("coniferous forrest")
    with pytest.raises(UnknownClassError, match="grid code 48"):
        level3.by_grid_code(48)  # NODATA is not a class
    with pytest.raises(UnknownClassError, match="class index 44"):
        level3.by_index(44)
    with pytest.raises(UnknownClassError, match="known: clc_level3"):
        get_nomenclature("clc4")
    with pytest.raises(ValueError, match=r"0\.\.999"):
        map_clc_codes(np.array([1000]), level3)


def test_registry_and_records() -> None:
    for name in NOMENCLATURE_NAMES:
        nom = get_nomenclature(name)
        assert nom.name == name
        records = nom.to_records()
        assert [r["index"] for r in records] == list(range(len(nom)))
        assert all(len(r["color"]) == 3 for r in records)
        assert Nomenclature.from_records(name, records).classes == nom.classes  # the plain form loses nothing
