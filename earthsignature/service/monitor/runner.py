"""``earthsignature monitor run``: resolve the settings, run the Luigi DAG, read a day's status.

The embedded provider (a local STAC catalog served on 127.0.0.1) is started by the caller, which passes
its URL: the monitor itself only knows EODAG providers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import luigi
from omegaconf import DictConfig

from earthsignature.core.layout import MonitorWorkFolder
from earthsignature.service.monitor import pipeline
from earthsignature.service.monitor.records import Failure, FoundProduct, SkippedProduct
from earthsignature.service.monitor.run_settings import RunSettings
from earthsignature.service.monitor.source import local_provider_yaml

#: The provider name of a static STAC catalog (the embedded one, or one served elsewhere).
LOCAL_PROVIDER = "local_s2"
#: Its collections per EODAG product type: SAFE zips, and Earth Search style COG items.
LOCAL_COLLECTIONS = {"S2_MSI_L2A": "sentinel-2-l2a", "S2_MSI_L1C": "sentinel-2-l1c",
                     "S2_MSI_L2A_COG": "sentinel-2-l2a-cogs"}


@dataclass
class RunReport:
    days: list[date]
    succeeded: bool
    failures: list[Failure]
    summary: str


def _settings(cfg: DictConfig, catalog_url: str | None, insecure: bool) -> RunSettings:
    provider_yaml = None
    if catalog_url:
        provider_yaml = local_provider_yaml(LOCAL_PROVIDER, catalog_url, MonitorWorkFolder(
            Path(cfg.monitor.work_dir)).products, LOCAL_COLLECTIONS)
    return RunSettings.resolve(cfg, insecure, provider_yaml)


def run_days(cfg: DictConfig, start: date, end: date, workers: int | None = None, scheduler: str | None = None,
             insecure: bool = False, catalog_url: str | None = None) -> RunReport:
    """Ingest every day from ``start`` to ``end``. ``catalog_url``: the static STAC catalog of the
    ``local_s2`` provider (``monitor.catalog_url`` when not given). ``scheduler``: ``host:port`` of a
    ``luigid`` shared by workers on any machines (each product is then ingested by one of them)."""
    days = [start + timedelta(days=k) for k in range((end - start).days + 1)]
    settings = _settings(cfg, catalog_url or cfg.monitor.catalog_url, insecure)
    work = MonitorWorkFolder(Path(settings.monitor.work_dir))
    work.path.mkdir(parents=True, exist_ok=True)
    settings_file = work.path / f"settings-{os.getpid()}.json"
    settings.save(settings_file)
    pipeline.configure(settings_file)
    # Luigi logs at the level the command line set (--log-level), WARNING by default
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    options = {"workers": workers or settings.monitor.workers, "detailed_summary": True, "log_level": level}
    try:
        # each worker searches for itself (its saved search is on its own disk), once per day...
        searched = luigi.build([pipeline.Search(day) for day in days], local_scheduler=True, **options)
        # ...then schedules the same product tasks as every other worker: a shared luigid deals them out
        result = luigi.build([pipeline.MonitorDay(day) for day in days], **options, **_scheduler(scheduler))
        failures = [f for day in days for f in pipeline.failures(day)]
        pipeline.forget_published()  # other processes published since the plan: ask again
        succeeded = not failures and all(pipeline.MonitorDay(day).complete() for day in days)
    finally:
        settings_file.unlink(missing_ok=True)
    return RunReport(days, succeeded, failures, f"{searched.summary_text}\n{result.summary_text}")


def _scheduler(address: str | None) -> dict:
    # with a shared scheduler, stay until the day is done, even while the last products run on other
    # workers (but not for ever behind a failed one: five idle minutes); alone, stop when nothing is left
    # that this worker can run
    config = luigi.configuration.get_config()
    # the scheduler's word that a product is done is the authority: a worker's own view of products
    # published by other workers is as old as its plan (see pipeline.is_published)
    config.set("worker", "check_unfulfilled_deps", "false")
    config.set("worker", "keep_alive", "true" if address else "false")
    config.set("worker", "max_keep_alive_idle_duration", "5 minutes")
    if not address:
        return {"local_scheduler": True}
    host, port = address.rsplit(":", 1)
    return {"scheduler_host": host, "scheduler_port": int(port)}


@dataclass(frozen=True)
class ProductStatus:
    """What this machine's work folder says about one product of a day."""

    product: FoundProduct
    fetched: bool
    models: dict[str, str]  # model key -> published | segmented, not published | pending
    failure: Failure | None  # the product's latest failed step, if it has not succeeded since


def day_status(cfg: DictConfig, day: date) -> list[ProductStatus]:
    """Every product of ``day``: fetched, and per model found in the folder segmented, published, or failed
    with its step and reason."""
    work = MonitorWorkFolder(Path(cfg.monitor.work_dir))
    search = pipeline.day_search(day, work)
    if search is None:
        return []
    latest: dict[str, Failure] = {}
    for failure in sorted(pipeline.failures(day, work), key=lambda f: f.time):
        latest[failure.product_id] = failure
    rows = []
    for product in search.products:
        folder = work.product_dir(day, product.product_id)
        models = {output.name: ("published" if work.published(output).exists() else
                                "segmented, not published" if work.segmentation(output).exists() else "pending")
                  for output in (sorted(p for p in folder.iterdir() if p.is_dir()) if folder.exists() else [])}
        rows.append(ProductStatus(product, work.fetched(product.product_id), models, latest.get(product.product_id)))
    return rows


def skipped_products(cfg: DictConfig, day: date) -> list[SkippedProduct]:
    """The products the provider returned for ``day`` that were not what was asked (another day, outside the
    area), as the day's search recorded them."""
    search = pipeline.day_search(day, MonitorWorkFolder(Path(cfg.monitor.work_dir)))
    return search.skipped if search else []
