"""Table 2 evaluation: cross-nomenclature class mapping, counting, and the written report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import rasterio
import torch
from torch import nn

from earthsignature.core.config import load_config
from earthsignature.core.nomenclature import burnt_area, clc_level2, clc_level3, hrl, urban_atlas
from earthsignature.embedded.fixtures import write_missing_fixtures
from earthsignature.train.evaluate import class_mapping, evaluate, evaluate_set
from earthsignature.train.module import SegmentationModule

STATS = {"bands": ["B02", "B03", "B04", "B08"], "minimum": 0.0, "maximum": 10000.0, "mean": [0.1] * 4}
CODES = [112, 211, 231, 311, 312, 512, 334]


def test_class_mapping_across_nomenclatures() -> None:
    to_hrl = class_mapping(clc_level3(), hrl())
    assert to_hrl[clc_level3().by_code(312).index] == hrl().by_name("Tree cover").index
    assert to_hrl[clc_level3().by_code(523).index] == hrl().by_name("Water and wetness").index
    assert to_hrl[clc_level3().by_code(334).index] == len(hrl())  # burnt: no HRL class
    from_level2 = class_mapping(clc_level2(), urban_atlas())
    assert from_level2[clc_level2().by_code(31).index] == urban_atlas().by_code(31000).index
    assert list(class_mapping(burnt_area(), burnt_area())) == [0, 1]


class ConstantPrediction(nn.Module):
    """Predicts one class everywhere, whatever the input."""

    def __init__(self, num_classes: int, index: int):
        super().__init__()
        self.num_classes, self.index = num_classes, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], self.num_classes, *x.shape[-2:])
        logits[:, self.index] = 1.0
        return logits


def _clc_module() -> SegmentationModule:
    return SegmentationModule(model={"name": "unet", "base_width": 4, "depth": 2},
                              nomenclature_name="clc_level3", classes=clc_level3().to_records(),
                              bands=STATS["bands"], normalization=STATS)


@pytest.fixture(scope="module")
def hrl_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hrl")
    from earthsignature.samples.pairs_writer import write_image_mask_pairs

    write_image_mask_pairs(root, hrl(), n_samples=8, size=32, codes=tuple(CODES), seed=4)
    return root


def _hrl_truth(root: Path) -> np.ndarray:
    import pandas as pd

    splits = pd.read_csv(root / "splits.csv")
    ids = splits.loc[splits["split"].isin(["validation", "test"]), "sample_id"]
    masks = []
    for sample_id in ids:
        with rasterio.open(root / "masks" / f"{sample_id}.tif") as dataset:
            masks.append(dataset.read(1))
    return np.concatenate([m.ravel() for m in masks])


@pytest.mark.parametrize(("clc_code", "hrl_code"), [(312, 2), (512, 4), (334, None)])
def test_constant_clc_model_on_hrl(hrl_root: Path, clc_code: int, hrl_code: int | None) -> None:
    module = _clc_module()
    module.model = ConstantPrediction(44, clc_level3().by_code(clc_code).index)
    cfg = load_config(None, "evaluate", ["checkpoint=x", f"test_sets.hrl.data.root={hrl_root}"])
    data = cfg.test_sets.hrl.data
    confusion, target = evaluate_set(module, data, ["validation", "test"], batch_size=3, num_workers=0,
                                     ignore_index=255)
    truth = _hrl_truth(hrl_root)
    labelled = truth[truth != 255]
    assert confusion.sum() == labelled.size  # nodata (burnt pixels: no HRL class) not counted
    column = len(target) if hrl_code is None else hrl_code - 1
    assert confusion[:, column].sum() == labelled.size  # every prediction lands in one column
    for k in range(len(target)):
        assert confusion[k].sum() == (labelled == k + 1).sum()


def test_evaluate_writes_table2(tmp_path: Path, hrl_root: Path) -> None:
    module = _clc_module()
    checkpoint = tmp_path / "clc.ckpt"
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(checkpoint)
    cfg = load_config(None, "evaluate", [
        f"checkpoint={checkpoint}", f"report_dir={tmp_path / 'report'}", "logger=none",
        f"test_sets.clc.data.root={tmp_path / 'ben'}", "test_sets.clc.data.fixture={patches_per_tile: 4}",
        f"test_sets.hrl.data.root={hrl_root}",
        f"test_sets.urban_atlas.data.root={tmp_path / 'ua'}",
        "test_sets.urban_atlas.data.fixture={n_samples: 4, size: 32}",
        f"test_sets.burnt_area.data.root={tmp_path / 'burnt'}",
        "test_sets.burnt_area.data.fixture={n_samples: 4, size: 32, codes: [312, 334]}",
        f"test_sets.crops.data.root={tmp_path / 'crops'}",
        "test_sets.crops.data.fixture={n_samples: 4, size: 32, codes: [211, 213, 221, 311]}",
        "batch_size=2"])
    write_missing_fixtures(cfg)  # as `earthsignature evaluate` does
    rows = evaluate(cfg)
    assert [r.label for r in rows] == ["CLC", "HRL", "URBAN-ATLAS", "CERTH", "CROPS"]
    report = tmp_path / "report"
    markdown = (report / "table2.md").read_text().splitlines()
    assert markdown[0].startswith("| Dataset | Average normalized accuracy")
    assert markdown[3].startswith("| HRL (") and len(markdown) == 7
    with (report / "table2.csv").open() as handle:
        table = list(csv.DictReader(handle))
    summary = json.loads((report / "table2.json").read_text())
    for row, result, expected in zip(table, rows, summary, strict=True):
        assert float(row["mean_iou"]) == pytest.approx(result.scores.mean_iou, abs=1e-4)
        assert expected["miou"] == pytest.approx(result.scores.mean_iou)
    for key in ("clc", "hrl", "urban_atlas", "burnt_area", "crops"):
        assert (report / f"confusion_{key}.png").exists()
    # the CERTH row scores a CLC model on a 2-class set through the mapping: burnt (334) -> Burnt
    assert rows[3].classes <= 2
    assert rows[4].classes <= 11  # CROPS: through the crops nomenclature's scene codes
