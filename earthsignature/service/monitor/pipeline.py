"""The daily ingestion as a Luigi DAG: Search -> Download -> Process -> Segment (per model) -> Publish.

One chain per product; independent products run in parallel (``workers``). Every task writes its output
atomically, so a re-run skips what is done and resumes what failed or was interrupted; publishing is
idempotent on the Database service's side, so nothing is ever stored twice. A failing product does not
stop the others: its task fails, writes its reason to ``failures/``, and the day ends with a list.

Settings (the resolved ``monitor`` config plus the API connection) reach every task through Luigi's own
configuration (``[earthsignature] settings_file``), so forked workers, ``luigid`` workers on other
machines and Luigi's range tools (``RangeDaily`` for backfills) all see them.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from datetime import date
from functools import cache
from pathlib import Path

import luigi
from tqdm import tqdm

from earthsignature.core.layout import ModelFolder, MonitorWorkFolder

log = logging.getLogger(__name__)


class EarthSignatureConfig(luigi.Config):
    task_namespace = ""
    settings_file = luigi.Parameter(default="")

    @classmethod
    def section(cls) -> str:
        return "earthsignature"


@cache
def _load(path: str) -> dict:
    return json.loads(Path(path).read_text())


def settings() -> dict:
    path = luigi.configuration.get_config().get("earthsignature", "settings_file", "")
    if not path:
        raise RuntimeError("no monitor settings: run through `earthsignature monitor run`")
    return _load(path)


def configure(settings_file: Path) -> None:
    config = luigi.configuration.get_config()
    if not config.has_section("earthsignature"):
        config.add_section("earthsignature")
    config.set("earthsignature", "settings_file", str(settings_file))


def work_dir() -> MonitorWorkFolder:
    return MonitorWorkFolder(Path(settings()["work_dir"]))


@cache
def model_key(model: str) -> str:
    """A folder name for a model: ``name-vVERSION`` from its manifest (model folders are often all "1")."""
    from earthsignature.core.manifest import ModelManifest

    manifest = ModelManifest.load(ModelFolder(Path(model)).manifest)
    return f"{manifest.name}-v{manifest.version or 0}"


def _write_json(target: luigi.LocalTarget, payload: dict) -> None:
    with target.temporary_path() as path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=1, default=str))


def _source(product_type: str):
    from earthsignature.service.monitor.source import ProductSource

    config = settings()
    return ProductSource(config["provider"], work_dir().products, config.get("provider_yaml"),
                         product_type, config["download"]["retries"], config["download"]["backoff_s"])


def _product_type_of(product_id: str) -> str:
    return "S2_MSI_L1C" if "MSIL1C" in product_id else "S2_MSI_L2A"


class MonitorTask(luigi.Task):
    day = luigi.DateParameter()

    def on_failure(self, exception: BaseException) -> str:
        """Keep the reason where `monitor run` and `monitor status` find it (workers may be other processes)."""
        reason = f"{type(exception).__name__}: {exception}"
        failures = work_dir().failures(self.day)
        failures.mkdir(parents=True, exist_ok=True)
        (failures / f"{self.task_id}.txt").write_text(f"{self.task_family} {self.param_kwargs}\n{reason}\n"
                                                      f"{traceback.format_exc()}")
        return reason

    def on_success(self) -> None:
        stale = work_dir().failures(self.day) / f"{self.task_id}.txt"
        stale.unlink(missing_ok=True)


class Search(MonitorTask):
    """The products of the day over the area (paged; no result counting)."""

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(work_dir().search(self.day)))

    def run(self) -> None:
        config = settings()
        found = [{"product_id": f.product_id, "start": f.start.isoformat(), "cloud_cover": f.cloud_cover,
                  "tile_id": f.tile_id}
                 for product_type in config["product_types"]
                 for f, _ in _source(product_type).search(self.day, config["area_wkt"], config.get("max_cloud_cover"))]
        _write_json(self.output(), {"day": self.day.isoformat(), "products": found})


class Download(MonitorTask):
    product_id = luigi.Parameter()

    def requires(self) -> Search:
        return Search(self.day)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(work_dir().product(self.product_id)))

    def run(self) -> None:
        source = _source(_product_type_of(self.product_id))
        for found, product in source.search(self.day, settings()["area_wkt"]):
            if found.product_id == self.product_id:
                source.download(product)  # writes the .SAFE folder atomically
                return
        raise RuntimeError(f"{self.product_id} is no longer offered by {settings()['provider']}")


class Process(MonitorTask):
    """The product as the models read it: L2A as downloaded, L1C through Sen2Cor (or a clear failure)."""

    product_id = luigi.Parameter()

    def requires(self) -> Download:
        return Download(self.day, self.product_id)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(work_dir().l2a_record(self.day, self.product_id)))

    def run(self) -> None:
        from earthsignature.core.readers import open_product
        from earthsignature.service.inference.product_input import to_l2a

        folder = Path(self.output().path).parent
        folder.mkdir(parents=True, exist_ok=True)
        product = to_l2a(open_product(self.input().path), folder)
        _write_json(self.output(), {"l2a": str(product.path)})


class Segment(MonitorTask):
    product_id = luigi.Parameter()
    model = luigi.Parameter()  # a folder with model.onnx + manifest.json

    def requires(self) -> Process:
        return Process(self.day, self.product_id)

    def _folder(self) -> Path:
        return work_dir().model_output(self.day, self.product_id, model_key(self.model))

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(MonitorWorkFolder.segmentation(self._folder())))

    def run(self) -> None:
        from earthsignature.core.readers import open_product
        from earthsignature.service.inference.backends import create_backend
        from earthsignature.service.inference.product_input import ProductInput
        from earthsignature.service.inference.segmenter import segment_product
        from earthsignature.service.monitor.publish import to_cog

        folder = self._folder()
        product = open_product(json.loads(Path(self.input().path).read_text())["l2a"])
        backend = create_backend(settings()["backend"], Path(self.model))
        with ProductInput(product, backend.manifest) as source, \
                tqdm(desc=f"{product.tile_id} {backend.manifest.name}", unit="tile", leave=False) as bar:
            started = time.monotonic()

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)
                megapixels = source.height * source.width * done / total / 1e6
                bar.set_postfix_str(f"{megapixels / max(time.monotonic() - started, 1e-6):.2f} Mpx/s")

            result = segment_product(source, backend, folder, progress)
        cogs = {name: str(to_cog(path)) for name, path in (("classes", result.classes_path),
                                                          ("confidence", result.confidence_path),
                                                          ("cloud_mask", result.cloud_mask_path))}
        _write_json(self.output(), {"product": str(product.path), "model": backend.manifest.model_id, "cogs": cogs,
                                    "pixel_counts": result.pixel_counts.tolist(), "height": result.height,
                                    "width": result.width})


class Publish(MonitorTask):
    product_id = luigi.Parameter()
    model = luigi.Parameter()

    def requires(self) -> Segment:
        return Segment(self.day, self.product_id, self.model)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(MonitorWorkFolder.published(Path(self.input().path).parent)))

    def run(self) -> None:
        import numpy as np

        from earthsignature.client import EarthSignatureClient
        from earthsignature.core.manifest import ModelManifest
        from earthsignature.core.readers import open_product
        from earthsignature.service.inference.segmenter import SegmentationResult
        from earthsignature.service.monitor.publish import create_request, quicklook_png

        segmentation = json.loads(Path(self.input().path).read_text())
        product = open_product(segmentation["product"])
        manifest = ModelManifest.load(ModelFolder(Path(self.model)).manifest)
        cogs = {k: Path(v) for k, v in segmentation["cogs"].items()}
        result = SegmentationResult(cogs["classes"], cogs["confidence"], cogs["cloud_mask"],
                                    np.asarray(segmentation["pixel_counts"]), segmentation["height"],
                                    segmentation["width"])
        request = create_request(product, manifest, result, quicklook_png(product))
        api = settings()["api"]
        with EarthSignatureClient(api["address"], ca=api.get("ca"), cert=api.get("cert"), key=api.get("key"),
                                  insecure=api.get("insecure", False)) as client:
            response = client.create(request)
        _write_json(self.output(), {"product_id": response.product_id, "segmentation_id": response.segmentation_id,
                                    "created": response.created})


class MonitorDay(MonitorTask):
    """The whole day: every product found, segmented by every configured model, published."""

    def requires(self) -> Search:
        return Search(self.day)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(work_dir().done(self.day)))

    def run(self):
        products = json.loads(Path(self.input().path).read_text())["products"]
        models = settings()["models"]
        yield [Publish(self.day, p["product_id"], model) for p in products for model in models]
        _write_json(self.output(), {"products": len(products), "models": models})


def failures(day: date) -> list[tuple[str, str]]:
    """(task, reason) of every task of ``day`` that failed and has not succeeded since."""
    folder = work_dir().failures(day)
    if not folder.exists():
        return []
    return [tuple(path.read_text().split("\n")[:2]) for path in sorted(folder.glob("*.txt"))]
