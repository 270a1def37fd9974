"""Training-data speed: reBEN packed as LMDB (``earthsignature data pack``) next to TorchGeo's GeoTIFF loader.

The same fixture patches (written by the project's reBEN writer, the release's real layout) are read through
a PyTorch DataLoader, whole epochs, with 0 and 2 loader workers:

* ``torchgeo-geotiff``: TorchGeo's own ``BigEarthNetV2`` (12 band files + reference map per sample): the
  baseline;
* ``earthsignature-geotiff``: our segmentation data set on the same files (bands resampled, CLC mapped);
* ``earthsignature-lmdb``: our data set on the pack (one LMDB read per sample).

Samples per second are the median of ``--epochs`` epochs after one warm-up epoch (page cache warm for
all). Prints a table and writes JSON next to this script.
    python benchmarks/reben_loading.py [--patches 2000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from results_file import write_results  # benchmarks/results_file.py, beside this script
from torch.utils.data import DataLoader
from torchgeo.datasets import BigEarthNetV2

from earthsignature.core.sentinel2 import L2A_BANDS
from earthsignature.data.bigearthnet import BigEarthNetV2Segmentation
from earthsignature.data.reben_lmdb import pack_release
from earthsignature.samples.bigearthnet_writer import DEFAULT_TILES, write_bigearthnet_v2


def contenders(root: Path) -> dict:
    return {
        "torchgeo-geotiff": lambda: BigEarthNetV2(str(root), split="train", bands="s2"),
        "earthsignature-geotiff": lambda: BigEarthNetV2Segmentation(root, "train", bands=L2A_BANDS),
        "earthsignature-lmdb": lambda: BigEarthNetV2Segmentation(root, "train", bands=L2A_BANDS, source="lmdb"),
    }


def samples_per_second(dataset, workers: int, epochs: int) -> float:
    loader = DataLoader(dataset, batch_size=32, num_workers=workers, persistent_workers=workers > 0)
    rates = []
    for epoch in range(epochs + 1):
        started = time.perf_counter()
        count = sum(len(batch["image"]) for batch in loader)
        if epoch:  # the first epoch warms the page cache and starts the workers
            rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, default=2000, help="patches written (about half are train)")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reben-bench-") as scratch:
        root = Path(scratch)
        per_tile = -(-args.patches // len(DEFAULT_TILES))
        started = time.perf_counter()
        write_bigearthnet_v2(root, patches_per_tile=per_tile, seed=1)
        written = time.perf_counter() - started
        started = time.perf_counter()
        records, folder = pack_release(root)
        packed = time.perf_counter() - started
        pack_mb = (folder / "data.mdb").stat().st_size / 1e6
        rows, figures = [], {}
        for workers in (0, 2):
            for name, make in contenders(root).items():
                dataset = make()
                rate = samples_per_second(dataset, workers, args.epochs)
                figures[f"{name}/workers={workers}"] = {"samples_per_s": rate, "samples": len(dataset)}
            baseline = figures[f"torchgeo-geotiff/workers={workers}"]["samples_per_s"]
            for name in contenders(root):
                rate = figures[f"{name}/workers={workers}"]["samples_per_s"]
                figures[f"{name}/workers={workers}"]["vs_torchgeo"] = rate / baseline
                rows.append((name, workers, rate, rate / baseline))
    print(f"{per_tile * len(DEFAULT_TILES)} patches written in {written:.0f} s; {records} LMDB records "
          f"({pack_mb:.0f} MB) packed in {packed:.1f} s")
    print(f"{'source':<24} {'workers':>7} {'samples/s':>10} {'x torchgeo':>11}")
    for name, workers, rate, ratio in rows:
        print(f"{name:<24} {workers:>7} {rate:>10.0f} {ratio:>10.2f}x")
    write_results("reben_loading", {"patches": per_tile * len(DEFAULT_TILES), "records": records,
                                    "pack_seconds": packed, "pack_mb": pack_mb, "contenders": figures})


if __name__ == "__main__":
    main()
