"""The monitor's records and run settings go to JSON and come back as the same dataclasses."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from earthsignature.core.config import load_config
from earthsignature.core.settings import BackendSettings, DownloadSettings, MonitorSettings
from earthsignature.service.monitor import records
from earthsignature.service.monitor.records import DaySearch, Failure, FoundProduct, Segmentation, SkippedProduct
from earthsignature.service.monitor.run_settings import RunSettings


def test_records_come_back_as_the_same_records(tmp_path) -> None:
    search = DaySearch(date(2021, 8, 1), [FoundProduct("S2A_x", datetime(2021, 8, 1, 9, 20, tzinfo=UTC), None,
                                                       "34SGH", "SAFE")], [SkippedProduct("S2B_y", "another day")])
    segmentation = Segmentation("/p.SAFE", "clc:1", Path("/o/classes.tif"), Path("/o/confidence.tif"),
                                Path("/o/cloud_mask.tif"), [3, 0, 7], 120, 120)
    for record in (search, segmentation):
        path = tmp_path / f"{type(record).__name__}.json"
        records.save(path, record)
        back = records.load(type(record), path)
        assert back == record and type(back) is type(record)
    assert isinstance(records.load(DaySearch, tmp_path / "DaySearch.json").products[0].start, datetime)


def test_a_record_is_replaced_whole_and_leaves_no_temporary_file(tmp_path) -> None:
    path = tmp_path / "failures" / "Fetch_x.json"
    first = Failure("Fetch_x", "S2A_x", None, "fetch", "DownloadError", "twice", datetime.now(UTC), 1)
    records.save(path, first)
    records.save(path, Failure(**{**first.__dict__, "attempt": 2}))
    assert records.load(Failure, path).attempt == 2
    assert [p.name for p in path.parent.iterdir()] == ["Fetch_x.json"]


def test_run_settings_cross_processes_typed(tmp_path) -> None:
    cfg = load_config("service", "embedded", ["monitor.models=[/models/clc/1]", "monitor.download.retries=5",
                                              "monitor.backend.threads=3", "api.limits.max_results=50"])
    settings = RunSettings.resolve(cfg, insecure=True, provider_yaml="providers: yaml")
    settings.save(tmp_path / "settings.json")
    back = RunSettings.load(tmp_path / "settings.json")
    assert back == settings
    assert isinstance(back.monitor, MonitorSettings) and isinstance(back.monitor.download, DownloadSettings)
    assert isinstance(back.monitor.backend, BackendSettings) and back.monitor.backend.threads == 3
    assert (back.monitor.download.retries, back.api.page_size, back.api.insecure) == (5, 50, True)
