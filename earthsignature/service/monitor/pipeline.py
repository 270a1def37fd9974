"""The daily ingestion as a Luigi DAG: Search, then one IngestProduct per product, under MonitorDay.

``Search`` runs once per day and saves the provider's results (EODAG's serialization); nothing searches
again. ``IngestProduct`` is the whole chain of one product: fetch (download a SAFE, or record a COG-asset
item read in place), process (L1C through Sen2Cor), segment with every model, publish to the Database
service. One task per chain means the chain never depends on files another worker left on its own disk,
so a day is shared by any number of workers on any machines under one ``luigid``: the scheduler gives each
product to one worker, and a product is complete when the Database service has it for every model (the
task asks it), not when some local file says so. Local files only let a worker resume its own work
(each step writes atomically and is skipped when done). A failing product does not stop the others: its
task fails, writes the step and the reason to ``failures/``, and the day ends with a list.

Settings (the resolved ``monitor`` config plus the API connection) reach every task through Luigi's own
configuration (``[earthsignature] settings_file``), so forked workers see them.
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
    for cached in (_load, _manifest):  # a new run in this process: nothing from the last one
        cached.cache_clear()


def work_dir() -> MonitorWorkFolder:
    return MonitorWorkFolder(Path(settings()["work_dir"]))


@cache
def _manifest(model: str):
    from earthsignature.core.manifest import ModelManifest

    return ModelManifest.load(ModelFolder(Path(model)).manifest)


def model_key(model: str) -> str:
    """A folder name for a model: ``name-vVERSION`` from its manifest (model folders are often all "1")."""
    manifest = _manifest(model)
    return f"{manifest.name}-v{manifest.version or 0}"


def _write_json(path: Path, payload: dict) -> None:
    target = luigi.LocalTarget(str(path))
    with target.temporary_path() as temporary:
        Path(temporary).parent.mkdir(parents=True, exist_ok=True)
        Path(temporary).write_text(json.dumps(payload, indent=1, default=str))


def _source(product_type: str = "S2_MSI_L2A"):
    from earthsignature.service.monitor.source import ProductSource

    config = settings()
    download = config["download"]
    return ProductSource(config["provider"], work_dir().products, config.get("provider_yaml"), product_type,
                         download["retries"], download["backoff_s"], download.get("stream_cogs", True))


def _client():
    """A Database service client, to use in a ``with`` block and close: Luigi forks its workers from the
    process that checks which products are done, and an open gRPC channel must never cross a fork (a
    child crashed in fork with one open)."""
    from earthsignature.client import EarthSignatureClient

    api = settings()["api"]
    return EarthSignatureClient(api["address"], ca=api.get("ca"), cert=api.get("cert"), key=api.get("key"),
                                insecure=api.get("insecure", False))


def is_published(product_id: str, model: str) -> bool:
    """Whether the Database service has ``product_id`` segmented by this model name and version."""
    manifest = _manifest(model)
    version = str(manifest.version or "0")
    with _client() as client:
        messages = client.list_messages(product_ids=[product_id], model_names=[manifest.name], max_pixels=1)
        return any(message.model_version == version for message in messages)


class MonitorTask(luigi.Task):
    day = luigi.DateParameter()

    def on_failure(self, exception: BaseException) -> str:
        """Keep the reason where `monitor run` and `monitor status` find it (workers may be other processes)."""
        reason = f"{self.reason_prefix()}{type(exception).__name__}: {exception}"
        failures = work_dir().failures(self.day)
        failures.mkdir(parents=True, exist_ok=True)
        (failures / f"{self.task_id}.txt").write_text(f"{self.task_family} {self.param_kwargs}\n{reason}\n"
                                                      f"{traceback.format_exc()}")
        return reason

    def reason_prefix(self) -> str:
        return ""

    def on_success(self) -> None:
        stale = work_dir().failures(self.day) / f"{self.task_id}.txt"
        stale.unlink(missing_ok=True)


class Search(MonitorTask):
    """The products of the day over the area, searched once (paged; no result counting) and saved."""

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(work_dir().search(self.day)))

    def run(self) -> None:
        config = settings()
        found, products, skipped = {}, [], []
        for product_type in config["product_types"]:
            source = _source(product_type)
            for product_found, product in source.search(self.day, config["area_wkt"], config.get("max_cloud_cover"),
                                                         skipped=skipped):
                if product_found.product_id not in found:  # one product offered under two product types
                    found[product_found.product_id] = product_found
                    products.append(product)
        _source().save_search(products, work_dir().search_results(self.day))
        outside = {f.product_id: reason for f, reason in skipped if f.product_id not in found}
        _write_json(Path(self.output().path), {"day": self.day.isoformat(), "products": [
            {"product_id": f.product_id, "start": f.start.isoformat(), "cloud_cover": f.cloud_cover,
             "tile_id": f.tile_id, "layout": f.layout} for f in found.values()],
            "skipped": [{"product_id": name, "reason": reason} for name, reason in sorted(outside.items())]})


class IngestProduct(MonitorTask):
    """One product's whole chain: fetch, process, segment with every model, publish."""

    product_id = luigi.Parameter()
    step = "start"

    def requires(self) -> Search:
        return Search(self.day)

    def complete(self) -> bool:
        try:
            return all(is_published(self.product_id, model) for model in settings()["models"])
        except Exception as error:  # the Database service is down: the run will say so when it publishes
            log.warning("cannot ask the Database service about %s: %s", self.product_id, error)
            return False

    def reason_prefix(self) -> str:
        return f"{self.step}: "  # the step that failed

    def run(self) -> None:
        from earthsignature.core.readers import open_product

        work = work_dir()
        self.step = "fetch"
        location = self._fetch(work)
        self.step = "process"
        record = work.l2a_record(self.day, self.product_id)
        if not record.exists():
            from earthsignature.service.inference.product_input import to_l2a

            record.parent.mkdir(parents=True, exist_ok=True)
            l2a = to_l2a(open_product(location), record.parent)
            _write_json(record, {"l2a": l2a.location})
        product = open_product(json.loads(record.read_text())["l2a"])
        for model in settings()["models"]:
            if is_published(self.product_id, model):
                continue  # stored by an earlier run, or by another worker
            output = work.model_output(self.day, self.product_id, model_key(model))
            self.step = f"segment {model_key(model)}"
            if not MonitorWorkFolder.segmentation(output).exists():
                _segment(product, model, output)
            self.step = f"publish {model_key(model)}"
            _publish(product, model, output)

    def _fetch(self, work: MonitorWorkFolder) -> str:
        """Where the product is readable on this worker: fetched from the saved search, or already here."""
        source = _source()
        for done in (source.safe_path(self.product_id), source.item_path(self.product_id)):
            if done.exists():
                return str(done)
        products = source.saved_search(work.search_results(self.day))
        if self.product_id not in products:
            raise RuntimeError(f"{self.product_id} is not in the saved search of {self.day}")
        return source.fetch(products[self.product_id])


def _segment(product, model: str, output: Path) -> None:
    from earthsignature.service.inference.backends import create_backend
    from earthsignature.service.inference.product_input import ProductInput
    from earthsignature.service.inference.segmenter import segment_product
    from earthsignature.service.monitor.publish import to_cog

    backend = create_backend(settings()["backend"], Path(model))
    with ProductInput(product, backend.manifest) as source, \
            tqdm(desc=f"{product.tile_id} {backend.manifest.name}", unit="tile", leave=False) as bar:
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)
            megapixels = source.height * source.width * done / total / 1e6
            bar.set_postfix_str(f"{megapixels / max(time.monotonic() - started, 1e-6):.2f} Mpx/s")

        result = segment_product(source, backend, output, progress)
    cogs = {name: str(to_cog(path)) for name, path in (("classes", result.classes_path),
                                                      ("confidence", result.confidence_path),
                                                      ("cloud_mask", result.cloud_mask_path))}
    _write_json(MonitorWorkFolder.segmentation(output), {
        "product": product.location, "model": backend.manifest.model_id, "cogs": cogs,
        "pixel_counts": result.pixel_counts.tolist(), "height": result.height, "width": result.width})


def _publish(product, model: str, output: Path) -> None:
    import numpy as np

    from earthsignature.service.inference.segmenter import SegmentationResult
    from earthsignature.service.monitor.publish import create_request, quicklook_png

    segmentation = json.loads(MonitorWorkFolder.segmentation(output).read_text())
    cogs = {k: Path(v) for k, v in segmentation["cogs"].items()}
    result = SegmentationResult(cogs["classes"], cogs["confidence"], cogs["cloud_mask"],
                                np.asarray(segmentation["pixel_counts"]), segmentation["height"],
                                segmentation["width"])
    import grpc

    try:
        with _client() as client:
            response = client.create(create_request(product, _manifest(model), result, quicklook_png(product)))
    except grpc.RpcError as error:  # the status code and the server's message, not the RPC object
        raise PublishError(f"the Database service answered {error.code().name}: {error.details()}") from None
    _write_json(MonitorWorkFolder.published(output), {
        "product_id": response.product_id, "segmentation_id": response.segmentation_id,
        "created": response.created})


class PublishError(RuntimeError):
    """The Database service refused or could not store a segmentation; the message has its code and reason."""


class MonitorDay(luigi.WrapperTask):
    """The whole day: every product the day's saved search found, ingested by every configured model.

    Its requirements come from the saved search, so ``Search`` runs before this task is scheduled (see
    ``runner.run_days``): every worker then schedules the same product tasks, and ``luigid`` shares them.
    """

    day = luigi.DateParameter()

    def requires(self) -> list[MonitorTask]:
        search = work_dir().search(self.day)
        if not search.exists():  # not searched (or the search failed): the day is not done
            return [Search(self.day)]
        return [IngestProduct(self.day, p["product_id"]) for p in json.loads(search.read_text())["products"]]


def failures(day: date, work: MonitorWorkFolder | None = None) -> list[tuple[str, str]]:
    """(task, reason) of every task of ``day`` that failed and has not succeeded since (in ``work``, by
    default the running monitor's work folder)."""
    folder = (work or work_dir()).failures(day)
    if not folder.exists():
        return []
    return [tuple([*path.read_text().split("\n"), ""][:2]) for path in sorted(folder.glob("*.txt"))]
