"""The raster store against the catalog: files no row names (orphans of a killed ingestion), staging
leftovers, and rows whose files are gone. ``earthsignature store check [--repair]`` runs it, and the
server runs it (repairing) when it starts.

Files younger than ``min_age_s`` are left alone: an ingestion may be writing them right now.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from earthsignature.core.cog import legend_sidecars
from earthsignature.core.product import gdal_path
from earthsignature.service.catalog.catalog import Catalog
from earthsignature.service.catalog.observations import cells_url
from earthsignature.service.catalog.raster_store import RasterStore
from earthsignature.service.catalog.tables import Product, Segmentation

log = logging.getLogger(__name__)
#: Leave files younger than this alone by default (an ingestion in flight).
DEFAULT_MIN_AGE_S = 3600.0


@dataclass
class StoreReport:
    files: int = 0
    orphans: list[str] = field(default_factory=list)  # files no catalog row names
    partial: list[str] = field(default_factory=list)  # staging leftovers
    missing: list[str] = field(default_factory=list)  # files catalog rows name that are not there
    repaired: bool = False

    @property
    def clean(self) -> bool:
        return not (self.orphans or self.partial or self.missing)

    def summary(self) -> str:
        state = "repaired" if self.repaired and not self.clean else "clean" if self.clean else "needs --repair"
        return (f"{self.files} files; {len(self.orphans)} orphaned, {len(self.partial)} partial, "
                f"{len(self.missing)} missing: {state}")


#: The segmentation columns that name a file in the store.
URL_COLUMNS = ("raster_url", "confidence_url", "cloud_mask_url", "observed_url")


def _key(store: RasterStore, url: str) -> str:
    """A comparable name for a store URL (local files by their path)."""
    if store.remote:
        return store.filesystem(url)[1]
    return str(Path(gdal_path(url)).absolute())


def _referenced(catalog: Catalog) -> dict[str, tuple[str, int]]:
    """url -> (what names it, row id) for every file the catalog references."""
    names: dict[str, tuple[str, int]] = {}
    with catalog.sessions() as session:
        for row in session.execute(sa.select(Segmentation.id, *(getattr(Segmentation, c) for c in URL_COLUMNS))):
            for column, url in zip(URL_COLUMNS, row[1:], strict=True):
                if url:
                    names[url] = (column, row.id)
            for sidecar in legend_sidecars(row.raster_url):  # maps stored before legends were written have none
                names[sidecar] = ("legend", row.id)
            if row.observed_url:  # without its cell counts an observed map is of no use: both go together
                names[cells_url(row.observed_url)] = ("observed_url", row.id)
        for row in session.execute(sa.select(Product.id, Product.quicklook_url).where(
                Product.quicklook_url.is_not(None))):
            names[row.quicklook_url] = ("quicklook_url", row.id)
    return names


def _files(store: RasterStore) -> dict[str, float | None]:
    """Every file in the store with its modification time (None where the store does not say)."""
    fs, root = store.filesystem(store.root_url)
    if not fs.exists(root):
        return {}
    return {path: _modified(info) for path, info in fs.find(root, detail=True).items()}


def _modified(info: dict) -> float | None:
    """A file's modification time (unix seconds) as fsspec describes it: ``mtime`` in a local folder, S3's
    ``LastModified``; None where the store does not say."""
    stamp = info.get("mtime", info.get("LastModified"))
    if isinstance(stamp, datetime.datetime):
        return stamp.timestamp()
    return float(stamp) if isinstance(stamp, int | float) else None


def check_store(catalog: Catalog, store: RasterStore, repair: bool = False,
                min_age_s: float = DEFAULT_MIN_AGE_S) -> StoreReport:
    referenced = _referenced(catalog)
    by_key = {_key(store, url): url for url in referenced}
    files = _files(store)
    report = StoreReport(files=len(files))
    now = time.time()
    for path, mtime in sorted(files.items()):
        if path in by_key or (mtime is not None and now - mtime < min_age_s):
            continue
        (report.partial if path.endswith(".partial") else report.orphans).append(path)
    report.missing = sorted(url for key, url in by_key.items() if key not in files and referenced[url][0] != "legend")
    if repair and not report.clean:
        _repair(catalog, store, report, referenced)
        report.repaired = True
    return report


def _repair(catalog: Catalog, store: RasterStore, report: StoreReport, referenced: dict) -> None:
    fs, _ = store.filesystem(store.root_url)
    for path in report.orphans + report.partial:
        fs.rm(path)
        log.warning("store check: removed %s", path)
    with catalog.sessions.begin() as session:
        for url in report.missing:
            column, row_id = referenced[url]
            if column == "raster_url":  # the map itself is gone: the segmentation cannot be answered
                row = session.get(Segmentation, row_id)
                for other in _files_of(row) if row else ():
                    if other and other not in report.missing:
                        store.delete(other)
                session.execute(sa.delete(Segmentation).where(Segmentation.id == row_id))
            elif column == "quicklook_url":
                session.execute(sa.update(Product).where(Product.id == row_id).values(quicklook_url=None))
            else:
                if column == "observed_url":  # the map or its counts: both are dropped (counted directly then)
                    row = session.get(Segmentation, row_id)
                    for other in (row.observed_url, cells_url(row.observed_url)) if row and row.observed_url else ():
                        if other not in report.missing:
                            store.delete(other)
                session.execute(sa.update(Segmentation).where(Segmentation.id == row_id).values({column: None}))
            log.warning("store check: %s of row %s is missing (%s); row repaired", column, row_id, url)


def _files_of(row: Segmentation) -> list[str]:
    """Every file of a segmentation but its class map."""
    files = [row.confidence_url, row.cloud_mask_url, *legend_sidecars(row.raster_url)]
    if row.observed_url:
        files += [row.observed_url, cells_url(row.observed_url)]
    return [url for url in files if url]
