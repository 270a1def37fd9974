// The pilots' map page: searches the STAC API of the server that serves it (same origin, same client
// certificate) and draws the footprints, the class maps and a legend of the classes present.
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
const baseLayers = params.get("basemap") === "none" ? [] : [new ol.layer.Tile({ source: new ol.source.OSM() })];
const map = new ol.Map({
  target: "map",
  layers: [...baseLayers, mapLayers,
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

async function drawMap(item) {
  const asset = item.assets.visual;
  if (!asset) return;
  const response = await fetch(asset.href);
  if (!response.ok) return;
  const bounds = response.headers.get("X-Bounds-EPSG-3857").split(",").map(Number);
  const url = URL.createObjectURL(await response.blob());
  mapLayers.getLayers().push(new ol.layer.Image({ opacity: 0.85,
    source: new ol.source.ImageStatic({ url, imageExtent: bounds, projection: "EPSG:3857" }) }));
}

function share(fraction) {
  return fraction < 0.01 ? "<1 %" : `${Math.round(fraction * 100)} %`;
}

function showLegend(items) {
  const collection = collections.find((c) => c.id === el("collection").value);
  const largest = new Map(); // class name -> the largest share among the results
  for (const item of items) {
    for (const [key, value] of Object.entries(item.properties)) {
      if (key.startsWith("fraction:") && value > 0) {
        const name = key.slice("fraction:".length);
        largest.set(name, Math.max(largest.get(name) || 0, value));
      }
    }
  }
  const versions = [...new Set(items.map((i) => i.properties["earthsignature:model_version"]))].join(", ");
  const title = document.createElement("h2");
  title.textContent = `${collection.id} v${versions}: classes present`;
  const entries = classesOf(collection).filter((c) => largest.has(c.name))
    .sort((a, b) => largest.get(b.name) - largest.get(a.name))
    .map((c) => {
      const entry = document.createElement("div");
      entry.className = "legend-entry";
      entry.dataset.class = c.name;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = `#${c.color_hint}`;
      const label = document.createElement("span");
      label.textContent = c.title || c.name;
      const amount = document.createElement("span");
      amount.className = "share";
      amount.textContent = share(largest.get(c.name));
      entry.append(swatch, label, amount);
      return entry;
    });
  el("legend").replaceChildren(...(items.length ? [title, ...entries] : []));
}

function showResults(items) {
  el("results").replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    const cloud = item.properties["eo:cloud_cover"];
    li.textContent = `${item.properties.datetime.slice(0, 10)} ${item.properties["grid:code"]}` +
      (cloud === undefined ? "" : ` (${cloud.toFixed(0)} % clouds)`);
    li.title = item.id;
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
    await Promise.all(items.slice(0, MAX_MAPS).map(drawMap));
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
  setStatus(`${collections.length} model${collections.length === 1 ? "" : "s"} in the catalog`, "ready");
}

start();
