"""The pilots' map page in Debian's Chromium (headless, with the pilot's certificate): the offline basemap, a
scale bar, a view fitted to the results, a clickable result list, legend shares of the clear area, class maps
drawn in their legend colours, the chart of class areas over time and a change map with its matrix."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from earthsignature.samples.requests import CLASSES, product_request
from earthsignature.service.catalog.queryables import class_slug

from .api_fixtures import client_of, map_page_in_chromium, search_on_map_page, server_with_http_app

pytestmark = pytest.mark.postgis


@pytest.fixture(scope="module")
def served(module_db, tmp_path_factory):
    """Two dates of 34SGH (the second 30 % burnt), one of 31TCJ."""
    with server_with_http_app(module_db, tmp_path_factory.mktemp("map-page")) as (certs, server, gateway):
        with client_of(certs, server) as client:
            client.create(product_request(1, "34SGH", day=0))
            client.create(product_request(2, "34SGH", day=3, burnt_share=0.3))
            client.create(product_request(3, "31TCJ", day=1))
        yield certs, f"https://127.0.0.1:{gateway.port}"


@pytest.fixture(scope="module")
def page(served):
    certs, root = served
    with map_page_in_chromium(certs, root, height=1000) as page:
        yield page


def map_pixels(page) -> np.ndarray:
    page.wait_for_timeout(400)
    return np.asarray(Image.open(io.BytesIO(page.locator("#map").screenshot())).convert("RGB")).astype(int)


def test_basemap_scale_bar_fitted_view_and_a_clickable_list(page) -> None:
    page.wait_for_function("baseLayers.length === 1 && baseLayers[0].getSource().getFeatures().length > 200",
                           timeout=30_000)  # the country outlines shipped with the page: no internet needed
    assert page.locator(".ol-scale-bar").count() == 1
    search_on_map_page(page, "clc-unet")
    assert page.inner_text("#status") == "3 maps found"
    assert page.evaluate("ol.extent.containsExtent(map.getView().calculateExtent(), footprints.getExtent())")
    assert page.evaluate("map.getView().getZoom()") > 5  # fitted to the results, not the world
    first = page.locator("#results li").nth(2)  # the oldest: 34SGH, 2021-08-01
    assert "T34SGH" in first.get_attribute("data-item") and "2021-08-01" in first.inner_text()
    first.click()
    item = first.get_attribute("data-item")
    assert page.evaluate(f"""ol.extent.containsCoordinate(
        footprints.getFeatureById({item!r}).getGeometry().getExtent(), map.getView().getCenter())""")
    assert "selected" in first.get_attribute("class")
    links = {a.inner_text(): a.get_attribute("href") for a in first.locator("a").all()}
    assert set(links) == {"item", "COG"} and links["COG"].endswith("/classes.tif")
    assert page.request.get(links["item"]).json()["id"] == item  # the links open with the pilot's certificate
    assert page.request.get(links["COG"]).body()[:4] == b"II*\x00"


def test_legend_shares_add_up_and_the_maps_show_their_legend_colours(page) -> None:
    shares = page.eval_on_selector_all(".legend-entry[data-class]",
                                       "e => e.map(x => [x.dataset.class, +x.dataset.share])")
    assert sum(share for _, share in shares) == pytest.approx(1.0, abs=1e-3)  # of the clear area, weighted
    assert page.inner_text("#legend-clouds").startswith("Clouds") and "%" in page.inner_text("#legend-clouds")
    page.evaluate("baseLayers.forEach(l => l.setVisible(false)); footprints.clear()")
    page.locator("#results li").nth(0).click()  # 34SGH on 2021-08-04 (burnt), over 2021-08-01's map of 34SGH
    pixels = map_pixels(page)
    drawn = {name or "clouds": np.array([int(color[k:k + 2], 16) for k in (0, 2, 4)]) for name, color in
             page.eval_on_selector_all(".legend-entry", "e => e.map(x => [x.dataset.class, x.dataset.color])")}
    height, width, _ = pixels.shape
    centre = pixels[height // 4: 3 * height // 4, width // 4: 3 * width // 4].reshape(-1, 3)
    distance = np.stack([np.abs(centre - colour).max(axis=1) for colour in drawn.values()])
    assert (distance.min(axis=0) <= 3).mean() > 0.95  # the map's pixels are legend colours, clouds included
    everywhere = pixels.reshape(-1, 3)
    seen = {name for name, colour in drawn.items() if (np.abs(everywhere - colour).max(axis=1) <= 3).sum() > 100}
    present = {class_slug(name) for _, _, name, _ in CLASSES}
    assert {"burnt_areas", "coniferous_forest", "clouds"} <= seen <= present | {"clouds"}


def test_chart_of_class_areas_and_a_change_map(page, tmp_path) -> None:
    page.evaluate("mapLayers.setVisible(false)")
    page.evaluate("drawnBox = map.getView().calculateExtent()")  # the view fitted to 34SGH: a box around it
    page.click("#chart-run")
    page.wait_for_selector("body[data-statistics=charted]", timeout=30_000)
    assert page.inner_text("#statistics-status") == "2 dates in the area"
    lines = page.eval_on_selector_all("#chart polyline", "p => p.map(x => [x.dataset.class, x.getAttribute('stroke'),"
                                      " x.getAttribute('points').split(' ').length])")
    colours = {name: f"#{color:06x}" for _, _, name, color in CLASSES}
    assert {name for name, _, _ in lines} >= {"Burnt areas", "Clouds"}
    assert all(points == 2 for _, _, points in lines)
    assert all(stroke == colours[name] for name, stroke, _ in lines if name != "Clouds")
    page.select_option("#change-before", "2021-08-01")
    page.select_option("#change-after", "2021-08-04")
    page.select_option("#change-to", "Burnt areas")
    page.click("#change-run")
    page.wait_for_selector("body[data-statistics=compared]", timeout=30_000)
    assert page.evaluate("changeLayers.getLayers().getLength()") == 1
    rows = page.eval_on_selector_all("#change-matrix tr", "r => r.map(x => x.innerText)")
    assert any("Burnt areas" in row and "yes" in row for row in rows[1:])
    pixels = map_pixels(page)
    became_burnt = (np.abs(pixels - 0).max(axis=2) <= 3).mean()  # burnt areas are drawn black
    background = (np.abs(pixels - [0xEE, 0xF2, 0xF5]).max(axis=2) <= 3).mean()  # unchanged: transparent
    assert 0.1 < became_burnt < 0.5 and became_burnt + background > 0.97
    screenshot = Path(os.environ.get("EARTHSIGNATURE_MAP_SCREENSHOT", tmp_path / "map-page.png"))
    page.locator("#results li").nth(2).click()  # the picture: the map before, what became burnt over it
    page.evaluate("mapLayers.setVisible(true); baseLayers.forEach(l => l.setVisible(true))")
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000
