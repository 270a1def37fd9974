// The pilots' map page: searches the STAC API of the server that serves it (same origin, same client
// certificate) and draws the footprints, the class maps and a legend of the classes present (their share of
// the clear area of the maps found). The basemap is the country outlines shipped with the page (it works
// offline); ?basemap=osm adds OpenStreetMap's tiles, ?basemap=none draws none. statistics.js adds the
// area statistics and change panel.
"use strict";

const STAC = "/stac";
const MAX_MAPS = 20; // class-map images drawn at once (footprints: every result)
const params = new URLSearchParams(location.search);
const el = (id) => document.getElementById(id);
let collections = [];
let drawnBox = null;

const footprints = new ol.source.Vector();
const boxSource = new ol.source.Vector();
const mapLayers = new ol.layer.Group({ layers: [] });
const CLOUD_COLOR = "#ffffff"; // as the server draws clouds in the maps' pictures (core.cog.CLOUD_COLOR)
const COUNTRIES = "/map/static/vendor/countries-50m.json"; // Natural Earth 1:50m, from world-atlas (npm)
const baseLayers = {
  none: [],
  osm: [new ol.layer.Tile({ source: new ol.source.OSM() })],
  countries: [new ol.layer.Vector({
    source: new ol.source.Vector({ url: COUNTRIES, format: new ol.format.TopoJSON({ layers: ["countries"] }) }),
    style: new ol.style.Style({ fill: new ol.style.Fill({ color: "#f4f1ea" }),
      stroke: new ol.style.Stroke({ color: "#8a8a8a", width: 1 }) }) })],
}[params.get("basemap") || "countries"] || [];
const changeLayers = new ol.layer.Group({ layers: [] }); // statistics.js's change maps, over the class maps
const CHANGE_Z = 1_000_000;
const map = new ol.Map({
  target: "map",
  controls: ol.control.defaults.defaults().extend([new ol.control.ScaleLine({ units: "metric", bar: true,
    text: true, minWidth: 120 })]),
  layers: [...baseLayers, mapLayers, changeLayers,
    new ol.layer.Vector({ source: footprints, style: new ol.style.Style({
      stroke: new ol.style.Stroke({ color: "#1f4e9c", width: 2 }) }) }),
    new ol.layer.Vector({ source: boxSource, style: new ol.style.Style({
      stroke: new ol.style.Stroke({ color: "#d2691e", width: 2, lineDash: [6, 4] }) }) })],
  view: new ol.View({ center: ol.proj.fromLonLat([10, 50]), zoom: 4 }),
});
const dragBox = new ol.interaction.DragBox({ condition: ol.events.condition.shiftKeyOnly });
dragBox.on("boxend", () => {
  drawnBox = dragBox.getGeometry().getExtent();
  boxSource.clear();
  boxSource.addFeature(new ol.Feature(ol.geom.Polygon.fromExtent(drawnBox)));
});
map.addInteraction(dragBox);

async function getJson(url, options) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.description || body.message || response.statusText);
  return body;
}

function setStatus(text, state, error = false) {
  el("status").textContent = text;
  el("status").classList.toggle("error", error);
  document.body.dataset.state = state;
}

function classesOf(collection) {
  const asset = (collection.item_assets || {}).classes || {};
  return (asset["classification:classes"] || []).filter((c) => !c.nodata);
}

function fillCategories() {
  const collection = collections.find((c) => c.id === el("collection").value);
  el("categories").replaceChildren(...classesOf(collection).map((c) => new Option(c.title || c.name, c.name)));
  const [start, end] = collection.extent.temporal.interval[0];
  el("start").value = (start || "").slice(0, 10);
  el("end").value = (end || "").slice(0, 10);
}

function areaBbox() {
  const extent = drawnBox || map.getView().calculateExtent(map.getSize());
  const [west, south, east, north] = ol.proj.transformExtent(extent, "EPSG:3857", "EPSG:4326");
  return [Math.max(west, -180), Math.max(south, -90), Math.min(east, 180), Math.min(north, 90)];
}

function searchBody() {
  const body = { collections: [el("collection").value], bbox: areaBbox(), limit: 100 };
  const start = el("start").value, end = el("end").value;
  if (start || end) body.datetime = `${start ? start + "T00:00:00Z" : ".."}/${end ? end + "T23:59:59Z" : ".."}`;
  const chosen = [...el("categories").selectedOptions].map((o) => o.value);
  if (chosen.length) {
    body["filter-lang"] = "cql2-json";
    body.filter = { op: "or", args: chosen.map((name) => ({ op: ">", args: [{ property: `fraction:${name}` }, 0] })) };
  }
  return body;
}

const layerOf = new Map(); // item id -> its class map's layer

// A result's class map, drawn at its place in time: newer maps over older ones (zIndex), opaque, so where
// maps of the same place overlap a pilot sees one map, never a blend of two.
async function drawMap(item, zIndex) {
  const asset = item.assets.visual;
  if (!asset) return;
  const response = await fetch(asset.href);
  if (!response.ok) return;
  const bounds = response.headers.get("X-Bounds-EPSG-3857").split(",").map(Number);
  const url = URL.createObjectURL(await response.blob());
  const layer = new ol.layer.Image({ zIndex,
    source: new ol.source.ImageStatic({ url, imageExtent: bounds, projection: "EPSG:3857" }) });
  layerOf.set(item.id, layer);
  mapLayers.getLayers().push(layer);
}

function share(fraction) {
  return fraction < 0.01 ? "<1 %" : `${Math.round(fraction * 100)} %`;
}

// The area of an item's map (m²) and its clear part, from its grid (proj:shape, proj:transform) and the
// share of its pixels under a clear sky.
function itemAreas(item) {
  const p = item.properties;
  const [rows, cols] = p["proj:shape"] || [0, 0];
  const t = p["proj:transform"] || [0, 0, 0, 0, 0, 0];
  const total = rows * cols * Math.abs(t[0] * t[4] - t[1] * t[3]);
  const clear = total * (p["earthsignature:clear_fraction"] ?? 1);
  return { total, clear, cloud: total * (p["earthsignature:cloud_fraction"] ?? 0) };
}

// Each class's share of the clear area of all the maps found (weighted by the maps' areas, so the shares add
// up to 100 %), and the share of the maps' pixels under clouds.
function legendShares(items) {
  const areas = new Map();
  let clear = 0, total = 0, cloud = 0;
  for (const item of items) {
    const area = itemAreas(item);
    clear += area.clear;
    total += area.total;
    cloud += area.cloud;
    for (const [key, value] of Object.entries(item.properties)) {
      if (key.startsWith("fraction:") && value > 0) {
        const name = key.slice("fraction:".length);
        areas.set(name, (areas.get(name) || 0) + value * area.clear);
      }
    }
  }
  const shares = new Map([...areas].map(([name, area]) => [name, clear ? area / clear : 0]));
  return { shares, cloud: total ? cloud / total : 0 };
}

function showLegend(items) {
  const collection = collections.find((c) => c.id === el("collection").value);
  const { shares, cloud } = legendShares(items);
  const versions = [...new Set(items.map((i) => i.properties["earthsignature:model_version"]))].join(", ");
  const title = document.createElement("h2");
  title.textContent = `${collection.id} v${versions}: share of the clear area`;
  const entries = classesOf(collection).filter((c) => shares.has(c.name))
    .sort((a, b) => shares.get(b.name) - shares.get(a.name))
    .map((c) => {
      const entry = document.createElement("div");
      entry.className = "legend-entry";
      entry.dataset.class = c.name;
      entry.dataset.share = shares.get(c.name).toFixed(6);
      entry.dataset.color = c.color_hint;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = `#${c.color_hint}`;
      const label = document.createElement("span");
      label.textContent = c.title || c.name;
      const amount = document.createElement("span");
      amount.className = "share";
      amount.textContent = share(shares.get(c.name));
      entry.append(swatch, label, amount);
      return entry;
    });
  const clouds = document.createElement("div");
  clouds.className = "legend-entry";
  clouds.id = "legend-clouds";
  clouds.dataset.color = CLOUD_COLOR.slice(1);
  clouds.innerHTML = `<span class="swatch" style="background:${CLOUD_COLOR}"></span><span>Clouds (of the maps)</span>`;
  const amount = document.createElement("span");
  amount.className = "share";
  amount.textContent = share(cloud);
  clouds.append(amount);
  const hint = document.createElement("p");
  hint.className = "hint";
  hint.textContent = "Class shares count the clear area only.";
  el("legend").replaceChildren(...(items.length ? [title, ...entries, clouds, hint] : []));
}

function link(text, href) {
  const anchor = document.createElement("a");
  anchor.textContent = text;
  anchor.href = href;
  anchor.target = "_blank";
  anchor.rel = "noopener";
  anchor.addEventListener("click", (event) => event.stopPropagation()); // a link opens, it does not zoom
  return anchor;
}

// Zoom to a result and show its map over the others (until the next search).
function zoomTo(item, li) {
  const feature = footprints.getFeatures().find((f) => f.getId() === item.id);
  if (feature) map.getView().fit(feature.getGeometry().getExtent(), { padding: [40, 40, 40, 40], duration: 0 });
  const layer = layerOf.get(item.id);
  if (layer) layer.setZIndex(Math.max(...mapLayers.getLayers().getArray().map((l) => l.getZIndex() || 0)) + 1);
  for (const other of el("results").children) other.classList.toggle("selected", other === li);
}

function showResults(items) {
  el("results").replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    const cloud = item.properties["eo:cloud_cover"];
    const label = document.createElement("span");
    label.textContent = `${item.properties.datetime.slice(0, 10)} ${item.properties["grid:code"]}` +
      (cloud === undefined ? "" : ` (${cloud.toFixed(0)} % clouds) `);
    li.title = `${item.id}: click to zoom to it`;
    li.dataset.item = item.id;
    const self = (item.links || []).find((l) => l.rel === "self");
    li.append(label, ...[self && link("item", self.href), item.assets.classes && link("COG", item.assets.classes.href),
      item.assets.thumbnail && link("quicklook", item.assets.thumbnail.href)].filter(Boolean));
    li.addEventListener("click", () => zoomTo(item, li));
    return li;
  }));
}

async function search(event) {
  if (event) event.preventDefault();
  setStatus("Searching…", "searching");
  try {
    const found = await getJson(`${STAC}/search`, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(searchBody()) });
    const items = found.features;
    footprints.clear();
    footprints.addFeatures(new ol.format.GeoJSON().readFeatures(found, { featureProjection: "EPSG:3857" }));
    mapLayers.getLayers().clear();
    layerOf.clear();
    const shown = items.slice(0, MAX_MAPS); // newest first: the newest gets the highest zIndex
    await Promise.all(shown.map((item, k) => drawMap(item, shown.length - k)));
    showLegend(items);
    showResults(items);
    if (items.length && params.get("fit") !== "no") {
      map.getView().fit(footprints.getExtent(), { padding: [40, 40, 40, 40], maxZoom: 14 });
    }
    const more = found.links.some((l) => l.rel === "next") ? " (more: narrow the search)" : "";
    setStatus(`${items.length} map${items.length === 1 ? "" : "s"} found${more}`, "done");
  } catch (error) {
    setStatus(`Search failed: ${error.message}`, "failed", true);
  }
}

async function start() {
  try {
    collections = (await getJson(`${STAC}/collections`)).collections;
  } catch (error) {
    setStatus(`The catalog cannot be read: ${error.message}`, "failed", true);
    return;
  }
  if (!collections.length) {
    setStatus("The catalog holds no maps yet.", "ready");
    return;
  }
  el("collection").replaceChildren(...collections.map((c) => new Option(c.title || c.id, c.id)));
  el("collection").addEventListener("change", fillCategories);
  fillCategories();
  const [west, south, east, north] = collections[0].extent.spatial.bbox[0];
  map.getView().fit(ol.proj.transformExtent([west, south, east, north], "EPSG:4326", "EPSG:3857"),
    { padding: [20, 20, 20, 20], maxZoom: 12 });
  el("search").addEventListener("submit", search);
  el("clear-area").addEventListener("click", () => { drawnBox = null; boxSource.clear(); });
  el("collection").addEventListener("change", () => changeLayers.getLayers().clear());
  setStatus(`${collections.length} model${collections.length === 1 ? "" : "s"} in the catalog`, "ready");
}

start();
