"""The daily ingestion as a Luigi DAG: one task per step, each with a target a worker resumes from.

    MonitorDay(day) <- IngestProduct(day, product) <- Search(day)
    IngestProduct runs, per model:  Fetch(day, product) <- Segment(model) <- Publish(model)

``Search`` runs once per day and saves the provider's results (EODAG's serialization) and the day's
``DaySearch`` record; nothing searches again. ``Fetch`` downloads a SAFE (or records a COG-asset item read
in place) and, for L1C, runs Sen2Cor: its target is the ``FetchedProduct`` record. ``Segment`` runs one
model over the product and writes COGs and a ``Segmentation`` record; ``Publish`` sends them to the Database
service and writes a ``Published`` record. Records are read back as the same dataclasses (``records``).

A product is complete when the Database service has it for every model, not when a local file says so:
the service is asked once per day and model (``is_published``, one paged query), and the answer is shared
by every task of that day, with the answers a worker got to its own Publish tasks since. ``IngestProduct``
is the unit a shared ``luigid`` deals out: the worker that gets a product runs its Fetch, Segment and
Publish tasks itself, under a scheduler of its own, so no step depends on files on another worker's disk,
and a worker killed between two steps resumes at the next one.
A failing step does not stop the others: it writes a ``Failure`` record (step, error, message, time,
attempt) that ``monitor status`` reads, and the day ends with a list.

Settings reach every task through Luigi's configuration (``[earthsignature] settings_file``, a saved
``RunSettings``), so forked workers read the same typed settings.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path

import luigi
import luigi.scheduler
import luigi.worker

from earthsignature.core.layout import ModelFolder, MonitorWorkFolder
from earthsignature.service.monitor import records
from earthsignature.service.monitor.records import (
    DaySearch,
    Failure,
    FetchedProduct,
    Published,
    Segmentation,
    SkippedProduct,
)
from earthsignature.service.monitor.run_settings import RunSettings

log = logging.getLogger(__name__)


class EarthSignatureConfig(luigi.Config):
    task_namespace = ""
    settings_file = luigi.Parameter(default="")

    @classmethod
    def section(cls) -> str:
        return "earthsignature"


@cache
def _load(path: str) -> RunSettings:
    return RunSettings.load(Path(path))


def settings() -> RunSettings:
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
    forget_published()


def work_dir() -> MonitorWorkFolder:
    return MonitorWorkFolder(Path(settings().monitor.work_dir))


@cache
def _manifest(model: str):
    from earthsignature.core.manifest import ModelManifest

    return ModelManifest.load(ModelFolder(Path(model)).manifest)


def model_key(model: str) -> str:
    """A folder name for a model: ``name-vVERSION`` from its manifest (model folders are often all "1")."""
    manifest = _manifest(model)
    return f"{manifest.name}-v{manifest.version or 0}"


def _source(product_type: str = "S2_MSI_L2A"):
    from earthsignature.service.monitor.source import ProductSource

    run = settings()
    download = run.monitor.download
    return ProductSource(run.monitor.provider, work_dir().products, run.provider_yaml, product_type,
                         download.retries, download.backoff_s, download.stream_cogs)


def _client():
    """A Database service client, to use in a ``with`` block and close: Luigi forks its workers from the
    process that checks which products are done, and an open gRPC channel must never cross a fork (a
    child crashed in fork with one open)."""
    from earthsignature.client import EarthSignatureClient

    api = settings().api
    return EarthSignatureClient(api.address, ca=api.ca, cert=api.cert, key=api.key, insecure=api.insecure)


#: What the Database service said it has, per day and model (see ``is_published``).
_published: dict[tuple[date, str], frozenset[str]] = {}


def is_published(day: date, product_id: str, model: str) -> bool:
    """Whether the Database service has ``product_id`` of ``day`` from this model name and version: asked once
    per day and model for all the day's products (``forget_published`` to ask again), or answered to this
    worker's own Publish since (its ``Published`` record)."""
    if MonitorWorkFolder.published(model_output(day, product_id, model)).exists():
        return True
    if (day, model) not in _published:
        try:
            _published[(day, model)] = _ask_published(day, model)
        except Exception as error:  # the Database service is down: the run will say so when it publishes
            log.warning("cannot ask the Database service about %s: %s", day, error)
            return False
    return product_id in _published[(day, model)]


def model_output(day: date, product_id: str, model: str) -> Path:
    """This worker's folder of one model's maps of a product (named by the model's name and version)."""
    return work_dir().model_output(day, product_id, model_key(model))


def forget_published() -> None:
    _published.clear()


def _ask_published(day: date, model: str) -> frozenset[str]:
    """One paged ListSegmentation: the model's segmentations of products acquired on ``day`` (UTC)."""
    manifest = _manifest(model)
    version = str(manifest.version or "0")
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=1) - timedelta(microseconds=1)
    page_size, token, found = settings().api.page_size, "", set()
    with _client() as client:
        while True:
            page = list(client.list_messages(start=start, end=end, model_names=[manifest.name], max_pixels=1,
                                             n_results=page_size, page_token=token))
            found |= {message.product_id for message in page if message.model_version == version}
            if len(page) < page_size:
                return frozenset(found)
            token = page[-1].page_token


def day_search(day: date, work: MonitorWorkFolder | None = None) -> DaySearch | None:
    """The day's search record, None before the search ran."""
    path = (work or work_dir()).search(day)
    return records.load(DaySearch, path) if path.exists() else None


class MonitorTask(luigi.Task):
    """A step of the day. A failure leaves a ``Failure`` record; a later success removes it."""

    day = luigi.DateParameter()
    step = "search"

    def product(self) -> str:
        return ""

    def model_name(self) -> str | None:
        return None

    def on_failure(self, exception: BaseException) -> str:
        return self.record_failure(type(exception).__name__, str(exception))

    def record_failure(self, error: str, message: str) -> str:
        path = work_dir().failure(self.day, self.task_id)
        attempt = records.load(Failure, path).attempt + 1 if path.exists() else 1
        failure = Failure(self.task_id, self.product(), self.model_name(), self.step, error, message,
                          datetime.now(UTC), attempt)
        records.save(path, failure)
        return f"{failure.step}: {failure.error}: {failure.message}"

    def on_success(self) -> None:
        work_dir().failure(self.day, self.task_id).unlink(missing_ok=True)


@MonitorTask.event_handler(luigi.Event.PROCESS_FAILURE)
def _process_died(task: MonitorTask, message: str) -> None:
    """A task whose process died (killed for memory, a crash in native code) runs no ``on_failure``, and
    Luigi only says so at INFO: its failure is recorded here, in the worker that saw it die."""
    log.error("%s", message)
    task.record_failure("ProcessDied", message)


@MonitorTask.event_handler(luigi.Event.TIMEOUT)
def _process_timed_out(task: MonitorTask, message: str) -> None:
    log.error("%s", message)
    task.record_failure("TimedOut", message)


class Search(MonitorTask):
    """The products of the day over the area, searched once (paged; no result counting) and saved."""

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(work_dir().search(self.day)))

    def run(self) -> None:
        monitor = settings().monitor
        found, products, skipped = {}, [], []
        for product_type in monitor.product_types:
            for product_found, product in _source(product_type).search(self.day, monitor.area_wkt,
                                                                       monitor.max_cloud_cover, skipped=skipped):
                if product_found.product_id not in found:  # one product offered under two product types
                    found[product_found.product_id] = product_found
                    products.append(product)
        _source().save_search(products, work_dir().search_results(self.day))
        outside = {f.product_id: reason for f, reason in skipped if f.product_id not in found}
        records.save(Path(self.output().path), DaySearch(
            self.day, list(found.values()), [SkippedProduct(p, reason) for p, reason in sorted(outside.items())]))


class ProductTask(MonitorTask):
    product_id = luigi.Parameter()

    def product(self) -> str:
        return self.product_id


class Fetch(ProductTask):
    """The product readable as L2A on this worker: downloaded (or its COG item recorded), and run through
    Sen2Cor when it is L1C."""

    def requires(self) -> Search:
        return Search(self.day)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(work_dir().fetched_record(self.day, self.product_id)))

    def run(self) -> None:
        from earthsignature.core.readers import open_product
        from earthsignature.service.inference.product_input import to_l2a

        self.step = "fetch"
        location = self._fetch()
        self.step = "process"
        folder = Path(self.output().path).parent
        folder.mkdir(parents=True, exist_ok=True)
        l2a = to_l2a(open_product(location), folder)
        records.save(Path(self.output().path), FetchedProduct(self.product_id, l2a.location))

    def _fetch(self) -> str:
        """Where the product is readable on this worker: fetched from the saved search, or already here."""
        source = _source()
        for done in (source.safe_path(self.product_id), source.item_path(self.product_id)):
            if done.exists():
                return str(done)
        products = source.saved_search(work_dir().search_results(self.day))
        if self.product_id not in products:
            raise RuntimeError(f"{self.product_id} is not in the saved search of {self.day}")
        return source.fetch(products[self.product_id])


class ModelTask(ProductTask):
    model = luigi.Parameter()  # a model folder (model.onnx + manifest.json)

    def model_name(self) -> str:
        return model_key(self.model)

    def model_output(self) -> Path:
        return model_output(self.day, self.product_id, self.model)


class Segment(ModelTask):
    """One model's class map, confidence and cloud mask of the product, as COGs."""

    step = "segment"

    def requires(self) -> Fetch:
        return Fetch(self.day, self.product_id)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(MonitorWorkFolder.segmentation(self.model_output())))

    def run(self) -> None:
        from earthsignature.core.readers import open_product

        fetched = records.load(FetchedProduct, Path(self.input().path))
        segmentation = _segment(open_product(fetched.location), self.model, self.model_output())
        records.save(Path(self.output().path), segmentation)


class Publish(ModelTask):
    """The segmentation stored by the Database service (complete when the service has it)."""

    step = "publish"

    def requires(self) -> Segment:
        return Segment(self.day, self.product_id, self.model)

    def complete(self) -> bool:
        return is_published(self.day, self.product_id, self.model)

    def run(self) -> None:
        import grpc

        from earthsignature.core.readers import open_product
        from earthsignature.service.monitor.publish import create_request, quicklook_png

        segmentation = records.load(Segmentation, Path(self.input().path))
        product = open_product(segmentation.product_location)
        request = create_request(product, _manifest(self.model), segmentation, quicklook_png(product))
        try:
            with _client() as client:
                response = client.create(request)
        except grpc.RpcError as error:  # the status code and the server's message, not the RPC object
            raise PublishError(f"the Database service answered {error.code().name}: {error.details()}") from None
        records.save(MonitorWorkFolder.published(self.model_output()),
                     Published(response.product_id, response.segmentation_id, response.created))


class PublishError(RuntimeError):
    """The Database service refused or could not store a segmentation; the message has its code and reason."""


class IngestProduct(ProductTask):
    """A product through every model: the unit a shared ``luigid`` gives to one worker. That worker runs the
    product's Fetch, Segment and Publish tasks itself, under a scheduler of its own, so no step of a product
    goes to another worker (whose disk does not hold the files of the steps before)."""

    step = "ingest"

    def requires(self) -> Search:
        return Search(self.day)

    def complete(self) -> bool:
        return all(is_published(self.day, self.product_id, model) for model in settings().monitor.models)

    def run(self) -> None:
        steps = [Publish(self.day, self.product_id, model) for model in settings().monitor.models]
        with luigi.worker.Worker(scheduler=luigi.scheduler.Scheduler(), keep_alive=False,
                                 no_install_shutdown_handler=True) as worker:
            for step in steps:
                worker.add(step)
            worker.run()
        unfinished = [step.model_name() for step in steps if not step.complete()]
        if unfinished:
            raise StepsFailed(f"not published by {', '.join(unfinished)}: see the failed step")

    def on_failure(self, exception: BaseException) -> str:
        if isinstance(exception, StepsFailed):  # the step that failed kept its own record
            return str(exception)
        return super().on_failure(exception)


class StepsFailed(RuntimeError):
    """A step of a product failed (its ``Failure`` record says which and why)."""


def _fresh_fork_lock() -> None:
    """Luigi forks a task's process while holding ``luigi.worker.fork_lock``, so the child inherits it
    locked, and the step worker that ``IngestProduct`` starts there would wait on it for ever (its
    keep-alive thread takes the lock): the child gets a lock of its own."""
    luigi.worker.fork_lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_fork_lock)


def _segment(product, model: str, output: Path) -> Segmentation:
    from earthsignature.service.inference.backends import create_backend
    from earthsignature.service.inference.product_input import ProductInput
    from earthsignature.service.inference.segmenter import segment_product
    from earthsignature.service.monitor.publish import to_cog

    backend = create_backend(settings().monitor.backend, Path(model))
    with ProductInput(product, backend.manifest) as source:
        started = time.monotonic()
        tiles = [0]

        def progress(done: int, total: int) -> None:
            tiles[0] = total

        result = segment_product(source, backend, output, progress)
        # one line per product and model (workers are processes: bars of their own would overwrite each other)
        seconds = max(time.monotonic() - started, 1e-6)
        megapixels = source.height * source.width / 1e6
        print(f"segmented {product.tile_id} {product.product_id} with {backend.manifest.name}: {tiles[0]} tiles, "
              f"{megapixels:.1f} Mpx in {seconds:.1f} s ({megapixels / seconds:.2f} Mpx/s)", file=sys.stderr,
              flush=True)
    return Segmentation(product.location, backend.manifest.model_id, to_cog(result.classes_path),
                        to_cog(result.confidence_path), to_cog(result.cloud_mask_path),
                        [int(count) for count in result.pixel_counts], result.height, result.width)


class MonitorDay(luigi.WrapperTask):
    """The whole day: every product the day's saved search found, ingested by every configured model.

    Its requirements come from the saved search, so ``Search`` runs before this task is scheduled (see
    ``runner.run_days``): every worker then schedules the same product tasks, and ``luigid`` shares them.
    """

    day = luigi.DateParameter()

    def requires(self) -> list[MonitorTask]:
        search = day_search(self.day)
        if search is None:  # not searched (or the search failed): the day is not done
            return [Search(self.day)]
        return [IngestProduct(self.day, product.product_id) for product in search.products]


def failures(day: date, work: MonitorWorkFolder | None = None) -> list[Failure]:
    """Every step of ``day`` that failed and has not succeeded since (in ``work``, by default the running
    monitor's work folder)."""
    folder = (work or work_dir()).failures(day)
    return [records.load(Failure, path) for path in sorted(folder.glob("*.json"))] if folder.exists() else []
