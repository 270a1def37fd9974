"""``earthsignature monitor run``: resolve the settings, run the Luigi DAG, read a day's status.

The embedded provider (a local STAC catalog served on 127.0.0.1) is started by the caller, which passes
its URL: the monitor itself only knows EODAG providers.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import luigi
from omegaconf import DictConfig, OmegaConf

from earthsignature.core.layout import CertificateFolder, MonitorWorkFolder
from earthsignature.service.monitor import pipeline
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
    failures: list[tuple[str, str]]
    summary: str


def _settings(cfg: DictConfig, catalog_url: str | None, insecure: bool) -> dict:
    monitor = OmegaConf.to_container(cfg.monitor, resolve=True)
    if not monitor["models"]:
        raise ValueError("monitor.models is empty: name at least one model folder (model.onnx + manifest.json)")
    certs = CertificateFolder(Path(cfg.api.certs_dir))
    identity = certs.identity("monitor")
    monitor["api"] = {"address": cfg.api.address, "insecure": insecure,
                      **({} if insecure else {"ca": str(certs.ca_cert), "cert": str(identity.cert),
                                               "key": str(identity.key)})}
    if catalog_url:
        monitor["provider_yaml"] = local_provider_yaml(
            LOCAL_PROVIDER, catalog_url, MonitorWorkFolder(Path(monitor["work_dir"])).products,
            LOCAL_COLLECTIONS)
    return monitor


def run_days(cfg: DictConfig, start: date, end: date, workers: int | None = None, scheduler: str | None = None,
             insecure: bool = False, catalog_url: str | None = None) -> RunReport:
    """Ingest every day from ``start`` to ``end``. ``catalog_url``: the static STAC catalog of the
    ``local_s2`` provider (``monitor.catalog_url`` when not given). ``scheduler``: ``host:port`` of a
    ``luigid`` shared by workers on any machines (each product is then ingested by one of them)."""
    days = [start + timedelta(days=k) for k in range((end - start).days + 1)]
    settings = _settings(cfg, catalog_url or cfg.monitor.get("catalog_url"), insecure)
    work = MonitorWorkFolder(Path(settings["work_dir"]))
    work.path.mkdir(parents=True, exist_ok=True)
    settings_file = work.path / f"settings-{os.getpid()}.json"
    settings_file.write_text(json.dumps(settings, indent=1))
    pipeline.configure(settings_file)
    # Luigi logs at the level the command line set (--log-level), WARNING by default
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    options = {"workers": workers or int(settings["workers"]), "detailed_summary": True, "log_level": level}
    try:
        # each worker searches for itself (its saved search is on its own disk), once per day...
        searched = luigi.build([pipeline.Search(day) for day in days], local_scheduler=True, **options)
        # ...then schedules the same product tasks as every other worker: a shared luigid deals them out
        result = luigi.build([pipeline.MonitorDay(day) for day in days], **options, **_scheduler(scheduler))
    finally:
        settings_file.unlink(missing_ok=True)
    failures = [f for day in days for f in pipeline.failures(day)]
    succeeded = not failures and all(pipeline.MonitorDay(day).complete() for day in days)
    return RunReport(days, succeeded, failures, f"{searched.summary_text}\n{result.summary_text}")


def _scheduler(address: str | None) -> dict:
    # with a shared scheduler, stay until the day is done, even while the last products run on other
    # workers (but not for ever behind a failed one: five idle minutes); alone, stop when nothing is left
    # that this worker can run
    config = luigi.configuration.get_config()
    config.set("worker", "keep_alive", "true" if address else "false")
    config.set("worker", "max_keep_alive_idle_duration", "5 minutes")
    if not address:
        return {"local_scheduler": True}
    host, port = address.rsplit(":", 1)
    return {"scheduler_host": host, "scheduler_port": int(port)}


def day_status(cfg: DictConfig, day: date) -> list[dict]:
    """What this machine's work folder says about every product of ``day``: fetched, and per model found
    in the folder segmented, published, or failed with its reason."""
    work = MonitorWorkFolder(Path(cfg.monitor.work_dir))
    if not work.search(day).exists():
        return []
    failed = dict(_failed_products(work, day))
    rows = []
    for product in json.loads(work.search(day).read_text())["products"]:
        product_id = product["product_id"]
        models = {}
        folder = work.product_dir(day, product_id)
        for output in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.exists() else []:
            models[output.name] = ("published" if work.published(output).exists() else
                                   "segmented, not published" if work.segmentation(output).exists() else "pending")
        rows.append({"product_id": product_id, "tile_id": product["tile_id"], "layout": product.get("layout", "SAFE"),
                     "fetched": work.fetched(product_id), "models": models, "failure": failed.get(product_id)})
    return rows


def skipped_products(cfg: DictConfig, day: date) -> list[dict]:
    """The products the provider returned for ``day`` that were not what was asked (another day, outside the
    area): ``{"product_id", "reason"}`` each, as the day's search recorded them."""
    search = MonitorWorkFolder(Path(cfg.monitor.work_dir)).search(day)
    return json.loads(search.read_text()).get("skipped", []) if search.exists() else []


def _failed_products(work: MonitorWorkFolder, day: date) -> list[tuple[str, str]]:
    """(product id, reason) of the day's failed product tasks."""
    matches = ((re.search(r"'product_id': '([^']+)'", task), reason) for task, reason in pipeline.failures(day, work))
    return [(match.group(1), reason) for match, reason in matches if match]
