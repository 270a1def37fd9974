"""Synthetic stand-ins for the training data sets, written where an experiment's config points.

A data config may carry ``fixture``: the options of a fixture writer (patches, seed, classes...). The entry
points (``earthsignature train``, ``finetune`` and ``evaluate``, and the demo) write such a set at its
``root`` when nothing is there yet, before the training stack starts; the stack itself only reads data sets,
real or synthetic, the same way, and never imports the writers (``earthsignature.samples``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from earthsignature.core.nomenclature import get_nomenclature

_SEQUENCES = ("codes", "weights")  # options the writers take as tuples


def data_configs(cfg: DictConfig) -> list[DictConfig]:
    """The data sets a composed config reads: ``data``, and each test set's (``evaluate``)."""
    found = [cfg.data] if "data" in cfg else []
    return found + [test_set.data for test_set in (cfg.get("test_sets") or {}).values() if "data" in test_set]


def write_missing_fixtures(cfg: DictConfig) -> list[Path]:
    """Write every configured fixture whose root does not exist; return the roots written."""
    written = []
    for data in data_configs(cfg):
        if data.get("fixture") and not Path(data.root).exists():
            write_fixture(data)
            written.append(Path(data.root))
    return written


def write_fixture(data: DictConfig) -> None:
    """The synthetic set ``data.fixture`` describes, in the layout of ``data.family`` (and packed into
    reBEN's LMDB when ``data.source`` is lmdb)."""
    options: dict[str, Any] = {key: tuple(value) if key in _SEQUENCES else value
                               for key, value in OmegaConf.to_container(data.fixture, resolve=True).items()}
    root = Path(data.root)
    if data.family == "bigearthnet":
        from earthsignature.samples.bigearthnet_writer import write_bigearthnet_v2

        write_bigearthnet_v2(root, **options)
        if data.get("source", "geotiff") == "lmdb":
            from earthsignature.data.reben_lmdb import pack_release

            pack_release(root)
    elif data.family == "pairs":
        from earthsignature.samples.pairs_writer import write_image_mask_pairs

        target = get_nomenclature(options.pop("nomenclature", data.kind))
        write_image_mask_pairs(root, target, bands=tuple(data.bands), **options)
    else:
        raise ValueError(f"no fixture writer for the data family {data.family!r}")
