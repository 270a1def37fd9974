"""Area statistics where pilots are: gRPC with mutual TLS, the HTTP binding, the CLI and the Python client, with
the limits of the other queries."""

from __future__ import annotations

import csv
import urllib.parse
from pathlib import Path

import grpc
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from google.protobuf import json_format
from shapely.geometry import Polygon

from earthsignature.cli import main
from earthsignature.core.settings import ApiLimits
from earthsignature.core.tiling_grid import tile
from earthsignature.samples.requests import class_map, product_request
from earthsignature.service.catalog.area_statistics import geodesic_hectares

from .api_fixtures import client_of, https, https_context, server_with_http_app

pytestmark = pytest.mark.postgis
SMALL = "POLYGON((20 35, 20.1 35, 20.1 35.1, 20 35.1, 20 35))"  # about 100 km²
SIZE = 120  # the sample requests' maps: 120 x 120 pixels of 10 m, the first 10 rows clouded


@pytest.fixture(scope="module")
def running(module_db, tmp_path_factory):
    limits = ApiLimits(statistics_max_area_km2=2_000, statistics_max_maps=3)
    with server_with_http_app(module_db, tmp_path_factory.mktemp("statistics"), limits) as (certs, server, gateway):
        with client_of(certs, server) as internal:
            internal.create(product_request(1, "34SGH", day=0, burnt_share=0.3))
            internal.create(product_request(2, "34SGH", day=3))
            internal.create(product_request(3, "31TCJ", day=1))
            internal.create(product_request(4, "34SGH", day=0, model="burnt-unet"))
        yield certs, server, gateway


def around_34sgh(margin: float = 0.01) -> Polygon:
    """An area holding the whole sample map of tile 34SGH, and some land beside it."""
    return Polygon(tile("34SGH").footprint_lonlat(SIZE * 10, SIZE * 10)).buffer(margin, join_style="mitre")


def expected_hectares(number: int, burnt_share: float = 0.0) -> dict[int, float]:
    clear = class_map(SIZE, number, burnt_share)[10:]  # rows under the clouds do not count
    return {int(v): float((clear == v).sum()) * 0.01 for v in np.unique(clear)}


def test_statistics_over_grpc_count_clear_pixels_per_date(running) -> None:
    certs, server, _ = running
    area = around_34sgh()
    with client_of(certs, server, "pilot") as pilot:
        answer = pilot.statistics_message(area.wkt, "clc-unet")
    assert answer.model_name == "clc-unet" and [d.date for d in answer.dates] == ["2021-08-01", "2021-08-04"]
    for day, number, burnt in zip(answer.dates, (1, 2), (0.3, 0.0), strict=True):
        assert len(day.product_ids) == 1
        by_value = {row.value: row.hectares for row in day.classes if row.hectares}
        assert by_value == pytest.approx(expected_hectares(number, burnt))
        assert day.clear_hectares == pytest.approx((SIZE - 10) * SIZE * 0.01)
        assert day.cloud_hectares == pytest.approx(10 * SIZE * 0.01) and day.nodata_hectares == 0
        assert day.area_hectares == pytest.approx(geodesic_hectares(area))
        covered = day.clear_hectares + day.cloud_hectares
        assert day.uncovered_hectares == pytest.approx(day.area_hectares - covered, rel=2e-3)
    assert {row.name for row in answer.dates[0].classes} >= {"Burnt areas", "Coniferous forest"}


def test_the_client_table_the_http_binding_and_categories(running) -> None:
    certs, server, gateway = running
    wkt = around_34sgh().wkt
    with client_of(certs, server, "pilot") as pilot:
        table = pilot.statistics(wkt, "clc-unet", start="2021-08-01", end="2021-08-02")
        burnt = pilot.statistics_message(wkt, "clc-unet", categories=["Burnt areas"])
        grpc_answer = json_format.MessageToDict(pilot.statistics_message(wkt, "clc-unet"))
    assert list(table["date"].astype(str)) == ["2021-08-01"]
    assert table.loc[0, "Burnt areas"] == pytest.approx(expected_hectares(1, 0.3)[2])
    assert table.loc[0, "cloud_ha"] == pytest.approx(12.0)
    assert [[row.name for row in day.classes] for day in burnt.dates] == [["Burnt areas"], ["Burnt areas"]]
    query = urllib.parse.urlencode({"wkt": wkt, "modelName": "clc-unet"})
    status, body = https(https_context(certs), f"https://127.0.0.1:{gateway.port}/v1/statistics:area?{query}")
    assert status == 200 and body == grpc_answer


@pytest.mark.parametrize(("parameters", "http_status", "grpc_code", "says"), [
    ({"model_name": "clc-unet"}, 400, grpc.StatusCode.INVALID_ARGUMENT, "wkt is required"),
    ({"wkt": SMALL}, 400, grpc.StatusCode.INVALID_ARGUMENT, "model_name"),
    ({"wkt": SMALL, "model_name": "no-such-model"}, 404,
     grpc.StatusCode.NOT_FOUND, "no collection"),
    ({"wkt": "POLYGON((20 35, 21 35, 21 36, 20 36, 20 35))", "model_name": "clc-unet"}, 400,
     grpc.StatusCode.INVALID_ARGUMENT, "statistics_max_area_km2"),
    ({"model_name": "clc-unet", "categories": ["no such class"]}, 400, grpc.StatusCode.INVALID_ARGUMENT,
     "unknown category"),
])
def test_bad_requests_say_what_to_fix(running, parameters, http_status, grpc_code, says) -> None:
    certs, server, gateway = running
    parameters = {"wkt": around_34sgh().wkt, **parameters} if "categories" in parameters else parameters
    with client_of(certs, server, "pilot") as pilot, pytest.raises(grpc.RpcError) as refused:
        pilot.statistics_message(parameters.get("wkt", ""), parameters.get("model_name", ""),
                                 categories=parameters.get("categories", ()))
    assert refused.value.code() == grpc_code and says in refused.value.details()
    query = urllib.parse.urlencode(parameters, doseq=True)
    status, body = https(https_context(certs), f"https://127.0.0.1:{gateway.port}/v1/statistics:area?{query}")
    assert status == http_status and says in body["message"]


def test_more_maps_than_the_budget_are_refused_naming_the_limit(running) -> None:
    certs, server, _ = running
    with client_of(certs, server, "internal") as internal:
        for number in (5, 6):  # with the two stored before: four maps of 34SGH, the limit is three
            internal.create(product_request(number, "34SGH", day=10 + number))
        with pytest.raises(grpc.RpcError) as refused:
            internal.statistics_message(around_34sgh().wkt, "clc-unet")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "statistics_max_maps" in refused.value.details() and "shorter period" in refused.value.details()


def test_query_stats_prints_a_table_and_writes_csv(running, tmp_path: Path) -> None:
    certs, server, _ = running
    key, cert = certs.pilot
    out = tmp_path / "stats.csv"
    result = CliRunner().invoke(main, [
        "query", "stats", "--wkt", around_34sgh().wkt, "--model", "clc-unet", "--start", "2021-08-01",
        "--end", "2021-08-05", "--category", "Burnt areas", "--csv", str(out),
        "--address", f"127.0.0.1:{server.port}", "--ca", str(certs.ca.cert_path), "--cert", str(cert),
        "--key", str(key)])
    assert result.exit_code == 0, result.output
    assert "2021-08-01" in result.output and "2 date(s) of clc-unet" in result.output
    rows = list(csv.DictReader(out.open()))
    assert [row["date"] for row in rows] == ["2021-08-01", "2021-08-04"]
    assert float(rows[0]["Burnt areas"]) == pytest.approx(expected_hectares(1, 0.3)[2])


def test_change_over_grpc_http_and_the_cli(running, tmp_path: Path) -> None:
    certs, server, gateway = running
    wkt = around_34sgh().wkt
    # 2021-08-04 (no burnt area) before 2021-08-01 (30 % burnt): which classes became burnt
    with client_of(certs, server, "pilot") as pilot:
        answer = pilot.change_message(wkt, "clc-unet", ("2021-08-04", None), ("2021-08-01", None),
                                      to_categories=["Burnt areas"])
        matrix = pilot.change(wkt, "clc-unet", ("2021-08-04", None), ("2021-08-01", None))
    before, after = class_map(SIZE, 2)[10:], class_map(SIZE, 1, 0.3)[10:]  # the clouded rows are not compared
    assert answer.compared_hectares == pytest.approx(before.size * 0.01)
    assert answer.cloud_hectares == pytest.approx(10 * SIZE * 0.01) and answer.no_map_hectares == 0
    got = {(t.before.value, t.after.value): t.hectares for t in answer.matrix}
    pairs, counts = np.unique(before.astype(int) * 100 + after, return_counts=True)
    assert got == pytest.approx({(int(p) // 100, int(p) % 100): n * 0.01 for p, n in zip(pairs, counts, strict=True)})
    drawn = [t for t in answer.matrix if t.map_value]
    assert drawn and all(t.after.name == "Burnt areas" != t.before.name for t in drawn)
    assert matrix.loc["Coniferous forest", "Burnt areas"] == pytest.approx(
        got.get((0, 2), 0.0)) and matrix.values.sum() == pytest.approx(answer.compared_hectares)
    with rasterio.MemoryFile(answer.maps[0].map.encoded_data) as memory, memory.open() as dataset:
        values = dataset.read(1)
        assert dataset.colormap(1)[drawn[0].map_value][:3] == (0, 0, 0)  # the colour of the class reached
        assert dataset.tags(1)[f"CLASS_{drawn[0].map_value}"] == f"{drawn[0].before.name} -> Burnt areas"
    became = sum((values == t.map_value).sum() for t in drawn)
    assert became * 0.01 == pytest.approx(sum(t.hectares for t in drawn))

    query = urllib.parse.urlencode({"wkt": wkt, "model_name": "clc-unet", "before_start": "2021-08-04T00:00:00Z",
                                    "after_start": "2021-08-01T00:00:00Z", "to_categories": "Burnt areas"})
    status, body = https(https_context(certs), f"https://127.0.0.1:{gateway.port}/v1/statistics:change?{query}")
    assert status == 200 and body == json_format.MessageToDict(answer)

    key, cert = certs.pilot
    result = CliRunner().invoke(main, [
        "query", "change", "--wkt", wkt, "--model", "clc-unet", "--before", "2021-08-04", "--after", "2021-08-01",
        "--to", "Burnt areas", "--save", str(tmp_path / "change"), "--csv", str(tmp_path / "matrix.csv"),
        "--address", f"127.0.0.1:{server.port}", "--ca", str(certs.ca.cert_path), "--cert", str(cert),
        "--key", str(key)])
    assert result.exit_code == 0, result.output
    assert "-> Burnt areas" in result.output and (tmp_path / "change" / "change-34SGH.tif").exists()
    assert "Burnt areas" in (tmp_path / "matrix.csv").read_text().splitlines()[0]
    bad = CliRunner().invoke(main, ["query", "change", "--wkt", wkt, "--model", "clc-unet", "--before", "August",
                                    "--after", "2021-08-01", "--insecure"])
    assert bad.exit_code == 2 and "DATE/DATE" in bad.output
