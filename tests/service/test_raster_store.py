"""The raster store's local reads: maps kept open per thread, so that answers asked again open nothing."""

from __future__ import annotations

import threading

import numpy as np
import rasterio
from affine import Affine

from earthsignature.core.settings import ApiLimits
from earthsignature.service.catalog import raster_store
from earthsignature.service.catalog.raster_store import RasterStore


def in_a_new_thread(work):
    """``work()``'s result, run in a thread of its own (the open maps are kept per thread)."""
    result = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join(60)
    return result[0]


def test_a_page_of_maps_asked_again_opens_none_of_them_again(tmp_path, monkeypatch) -> None:
    """A page of answers read twice in the same order: each map opened once. (With 8 maps kept and a page of
    10, least-recently-used eviction threw out each map just before it was asked for again.)"""
    store = RasterStore(str(tmp_path))
    page = ApiLimits.default_results
    urls = [store.write_cog(store.url_for(f"map{k}", "classes.tif"), np.full((16, 16), k, np.uint8), "EPSG:32634",
                            Affine(10, 0, 500_000, 0, -10, 4_000_000)) for k in range(page)]
    opened: list[str] = []
    real_open = rasterio.open
    monkeypatch.setattr(raster_store.rasterio, "open", lambda path, *a, **kw: opened.append(path) or real_open(
        path, *a, **kw))

    def read_page_twice() -> list[list[int]]:
        return [[int(store.read(url).data[0, 0]) for url in urls] for _ in range(2)]

    assert in_a_new_thread(read_page_twice) == [list(range(page))] * 2
    assert sorted(opened) == sorted(set(opened)) and len(opened) == page


def test_maps_past_the_cap_are_closed(tmp_path) -> None:
    """No thread holds more than OPEN_PER_THREAD maps (file descriptors) open: the least recently used close."""
    store = RasterStore(str(tmp_path))
    count = raster_store.OPEN_PER_THREAD + 3
    urls = [store.write_cog(store.url_for(f"map{k}", "classes.tif"), np.zeros((8, 8), np.uint8), "EPSG:32634",
                            Affine(10, 0, 500_000, 0, -10, 4_000_000)) for k in range(count)]

    def open_all() -> list[bool]:
        datasets = [store._open(url) for url in urls]
        return [dataset.closed for dataset in datasets]

    closed = in_a_new_thread(open_all)
    assert closed == [True] * 3 + [False] * raster_store.OPEN_PER_THREAD
