"""What a product costs with the seed's model: the seed-size UNet (width 64, depth 4) beside the smoke model
(width 16, depth 3), each in float32 and int8 (``export --int8``), in one run, on this machine's CPUs.

For each model: one product (a 2196 x 2196 crop of a tile by default, ``--size 10980`` for a full one)
through reading, whole-product segmentation and COGs, each stage in a fresh process so its peak memory is
its own; then the very tiles the segmenter handed to the model, replayed through the model alone (nothing
else running). The ratio *product wall time / model alone* is what the rest of the chain adds (reading
JPEG 2000, blending, writing) and what competes with the model for the cores. Figures for a full
10980 x 10980 product (120.6 Mpx) are extrapolated per Mpx from the crop and labelled so. Then two
products one after the other with 1 worker of 2 threads against side by side with 2 workers of 1 thread.

The int8 models are calibrated on another product than the one measured. The models are untrained (speed
does not depend on the weights), so their int8 agreement is not a quality figure: with ``--trained`` (an
export folder, the demo's by default when it exists) the agreement of a trained model is measured too.

    python benchmarks/seed_model.py [--size 2196] [--skip-workers] [--trained var/demo/exports/clc-unet-smoke]
    python benchmarks/seed_model.py --size 10980 --models "seed (w64 d4)" --precisions float32 --skip-workers
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np
from monitor import CACHE, _cog_stage, _peak_mb, _read_stage, in_process, model, product, workers
from results_file import write_results  # benchmarks/results_file.py, beside this script

from earthsignature.core.config import state_home
from earthsignature.core.layout import ModelFolder

FULL_PRODUCT_MPX = 10980**2 / 1e6
MODELS = {"smoke (w16 d3)": (16, 3), "seed (w64 d4)": (64, 4)}


class _RecordingBackend:
    """The model service's backend, keeping every batch it is handed (on disk: a full product's tiles do
    not fit beside the segmenter) and the seconds spent keeping them, to take off the wall time."""

    def __init__(self, backend, folder: Path):
        self.backend, self.manifest, self.folder = backend, backend.manifest, folder
        self.batch_size, self.tiles_per_call = backend.batch_size, backend.tiles_per_call
        self.calls, self.saving_s = 0, 0.0
        folder.mkdir(parents=True, exist_ok=True)

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        np.save(self.folder / f"{self.calls:06d}.npy", tiles)
        self.calls += 1
        self.saving_s += time.perf_counter() - start
        return self.backend.predict(tiles)


def _segment_stage(product_path: str, model_dir: str, out_dir: str, threads: int, queue) -> None:
    from earthsignature.core.readers import open_product
    from earthsignature.core.settings import BackendSettings
    from earthsignature.service.inference.backends import create_backend
    from earthsignature.service.inference.product_input import ProductInput
    from earthsignature.service.inference.segmenter import segment_product

    backend = _RecordingBackend(create_backend(BackendSettings(threads=threads), Path(model_dir)),
                                Path(out_dir) / "tiles")
    start = time.perf_counter()
    with ProductInput(open_product(product_path), backend.manifest) as source:
        result = segment_product(source, backend, Path(out_dir))
    seconds = time.perf_counter() - start - backend.saving_s
    queue.put({"seconds": seconds, "peak_mb": _peak_mb(), "pixels": result.height * result.width,
               "calls": backend.calls})


def _model_alone_stage(model_dir: str, tiles_dir: str, threads: int, queue) -> None:
    """The recorded batches through the model, loading excluded from the time."""
    from earthsignature.core.settings import BackendSettings
    from earthsignature.service.inference.backends import create_backend

    backend = create_backend(BackendSettings(threads=threads), Path(model_dir))
    seconds, tiles = 0.0, 0
    for path in sorted(Path(tiles_dir).glob("*.npy")):
        batch = np.load(path)
        start = time.perf_counter()
        backend.predict(batch)
        seconds += time.perf_counter() - start
        tiles += len(batch)
    queue.put({"seconds": seconds, "tiles": tiles, "peak_mb": _peak_mb()})


def int8_model(float_dir: Path, calibration_product: Path) -> Path:
    """The int8 export of a float model folder, calibrated on tiles of another product (cached)."""
    from earthsignature.core.manifest import ModelManifest
    from earthsignature.export.quantize import product_tiles, quantize_export

    folder = float_dir.with_name(f"{float_dir.name}-int8")
    if not ModelFolder(folder).manifest.exists():
        tiles = product_tiles([calibration_product], ModelManifest.load(ModelFolder(float_dir).manifest), 6, 6)
        quantize_export(float_dir, tiles, folder, min_agreement=0.0)  # untrained weights: speed only
    return folder


def measure(name: str, precision: str, model_dir: Path, product_path: Path, megapixels: float) -> dict:
    out = CACHE / f"out-seed-{model_dir.name}"
    shutil.rmtree(out, ignore_errors=True)  # the tiles of an earlier run would be replayed
    read = in_process(_read_stage, "model service", str(product_path), str(model_dir))
    segment = in_process(_segment_stage, str(product_path), str(model_dir), str(out), 0)
    alone = in_process(_model_alone_stage, str(model_dir), str(out / "tiles"), 0)
    cogs = in_process(_cog_stage, str(out))
    wall = segment["seconds"] + cogs["seconds"]
    full = wall / megapixels * FULL_PRODUCT_MPX
    return {"model": name, "precision": precision, "megapixels": megapixels, "read_s": read["seconds"],
            "segment_s": segment["seconds"], "cog_s": cogs["seconds"], "wall_s": wall,
            "model_alone_s": alone["seconds"], "tiles": alone["tiles"], "wall_over_model": wall / alone["seconds"],
            "peak_mb": segment["peak_mb"], "mpx_per_s": megapixels / wall,
            "full_product_s": full, "full_product_extrapolated": megapixels < FULL_PRODUCT_MPX,
            "products_per_hour": 3600 / full}


def trained_agreement(folder: Path, products: list[Path]) -> dict | None:
    """The int8 agreement of a trained model on held-out tiles of the benchmark's products."""
    import tempfile

    from earthsignature.core.manifest import ModelManifest
    from earthsignature.export.quantize import product_tiles, quantize_export

    if not ModelFolder(folder).manifest.exists():
        return None
    manifest = ModelManifest.load(ModelFolder(folder).manifest)
    tiles = product_tiles(products, manifest, 24, 24)
    with tempfile.TemporaryDirectory() as tmp:
        _, int8 = quantize_export(folder, tiles, Path(tmp), min_agreement=0.0)
    return {"model": str(folder), "tile_size": manifest.tile_size, "calibration_tiles": 24, "parity_tiles": 24,
            "argmax_agreement": int8.quantization.argmax_agreement}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2196, help="product side in pixels (10980: a full tile)")
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--precisions", nargs="+", choices=["float32", "int8"], default=["float32", "int8"])
    parser.add_argument("--trained", type=Path, default=state_home() / "demo" / "exports" / "clc-unet-smoke")
    args = parser.parse_args()
    measured, calibration = product(args.size, 1, "31TCJ"), product(2196, 2, "33UUP")
    megapixels = args.size**2 / 1e6
    rows, folders = [], {}
    for name in args.models:
        float_dir = model(*MODELS[name])
        folders[name] = {"float32": float_dir, "int8": int8_model(float_dir, calibration)}
        for precision in args.precisions:
            folder = folders[name][precision]
            rows.append(measure(name, precision, folder, measured, megapixels))
            print(f"  {name} {precision}: {rows[-1]['wall_s']:.1f} s", flush=True)
    scaling = []
    if not args.skip_workers and "seed (w64 d4)" in folders:
        pair = [product(2196, 1, "31TCJ"), product(2196, 2, "33UUP")]
        for precision, folder in folders["seed (w64 d4)"].items():
            sequential, parallel = workers(pair, folder)
            scaling.append({"model": "seed (w64 d4)", "precision": precision, "one_worker_two_threads_s": sequential,
                            "two_workers_one_thread_s": parallel, "speedup": sequential / parallel})
    agreement = trained_agreement(args.trained, [product(2196, 1, "31TCJ"), product(2196, 2, "33UUP")])
    report(rows, scaling, agreement, args.size)
    # the 2196 px crop is the default figure; other sizes (a full product) are kept beside it
    name = "seed_model" if args.size == 2196 else f"seed_model_{args.size}"
    write_results(name, {"args": {**vars(args), "trained": str(args.trained)}, "rows": rows, "workers": scaling,
                         "trained_int8": agreement})


def report(rows: list[dict], scaling: list[dict], agreement: dict | None, size: int) -> None:
    extrapolated = " (extrapolated per Mpx)" if rows[0]["full_product_extrapolated"] else ""
    print(f"\n{size} x {size} px product, tiles 512 overlap 64, {os.cpu_count()} cores; full product = "
          f"{FULL_PRODUCT_MPX:.1f} Mpx{extrapolated}")
    print(f"{'model':<15} {'precision':<9} {'read s':>7} {'segment s':>9} {'COG s':>6} {'wall s':>7} {'model s':>8} "
          f"{'wall/model':>10} {'peak MB':>8} {'Mpx/s':>6} {'full s':>7} {'prod/h':>7}")
    for r in rows:
        print(f"{r['model']:<15} {r['precision']:<9} {r['read_s']:>7.1f} {r['segment_s']:>9.1f} {r['cog_s']:>6.1f} "
              f"{r['wall_s']:>7.1f} {r['model_alone_s']:>8.1f} {r['wall_over_model']:>9.2f}x {r['peak_mb']:>8.0f} "
              f"{r['mpx_per_s']:>6.2f} {r['full_product_s']:>7.0f} {r['products_per_hour']:>7.1f}")
    seed = {r["precision"]: r for r in rows if r["model"].startswith("seed")}
    if len(seed) == 2:
        print(f"\nseed model, int8 vs float32: {seed['float32']['wall_s'] / seed['int8']['wall_s']:.2f}x on the "
              f"product, {seed['float32']['model_alone_s'] / seed['int8']['model_alone_s']:.2f}x for the model alone")
    for s in scaling:
        print(f"2 products, {s['model']} {s['precision']}: 1 worker x 2 threads {s['one_worker_two_threads_s']:.1f} s, "
              f"2 workers x 1 thread {s['two_workers_one_thread_s']:.1f} s -> {s['speedup']:.2f}x")
    if agreement:
        print(f"trained model {agreement['model']}: int8 argmax agreement {agreement['argmax_agreement']:.4f} "
              f"on {agreement['parity_tiles']} held-out tiles")


if __name__ == "__main__":
    main()
