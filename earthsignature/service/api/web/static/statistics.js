// The map page's "How much, and what changed": a chart of each class's clear area over the dates inside the
// box (or the view), from the area statistics binding; and, between two of those dates, the change maps drawn
// on the map (unchanged pixels transparent, over the class maps) and the transition matrix, from the change
// binding. Uses map.js's map, layers and helpers.
"use strict";

const CLOUD_LINE = "#8c96a0"; // the chart's line of clouded area (dashed)
const CHART = { width: 300, height: 170, left: 44, right: 8, top: 8, bottom: 22 };

function areaWkt() {
  const [west, south, east, north] = areaBbox();
  return `POLYGON((${west} ${south},${east} ${south},${east} ${north},${west} ${north},${west} ${south}))`;
}

function statisticsQuery(extra) {
  return new URLSearchParams({ wkt: areaWkt(), model_name: el("collection").value, ...extra });
}

function setStatisticsStatus(text, state, error = false) {
  el("statistics-status").textContent = text;
  el("statistics-status").classList.toggle("error", error);
  document.body.dataset.statistics = state;
}

const hexColor = (color) => `#${(color || 0).toString(16).padStart(6, "0")}`;
const hectares = (value) => `${Math.round(value || 0).toLocaleString("en")} ha`;

function svgElement(name, attributes) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

// One line per class that has area on some date, in the class's colour, and a dashed line for clouds.
function chartSeries(dates) {
  const series = new Map();
  dates.forEach((day, k) => {
    for (const row of day.classes || []) {
      if (!series.has(row.name)) series.set(row.name, { color: hexColor(row.color), values: dates.map(() => 0) });
      series.get(row.name).values[k] = row.hectares || 0;
    }
  });
  const shown = [...series].filter(([, s]) => s.values.some((v) => v > 0));
  shown.push(["Clouds", { color: CLOUD_LINE, values: dates.map((d) => d.cloudHectares || 0), dashed: true }]);
  return shown;
}

function drawChart(dates) {
  const { width, height, left, right, top, bottom } = CHART;
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "Class areas over time (hectares)" });
  const series = chartSeries(dates);
  const highest = Math.max(1, ...series.flatMap(([, s]) => s.values));
  const times = dates.map((d) => Date.parse(d.date));
  const first = Math.min(...times), span = Math.max(1, Math.max(...times) - first);
  const x = (k) => left + (dates.length > 1 ? (times[k] - first) / span : 0.5) * (width - left - right);
  const y = (value) => top + (1 - value / highest) * (height - top - bottom);
  svg.append(svgElement("line", { x1: left, y1: y(0), x2: width - right, y2: y(0), stroke: "#999" }),
    svgElement("line", { x1: left, y1: top, x2: left, y2: y(0), stroke: "#999" }));
  const labels = [[left - 4, y(highest) + 4, "end", hectares(highest)], [left - 4, y(0), "end", "0"],
    [left, height - 6, "start", dates[0].date], [width - right, height - 6, "end", dates[dates.length - 1].date]];
  for (const [lx, ly, anchor, text] of labels) {
    const label = svgElement("text", { x: lx, y: ly, "text-anchor": anchor, "font-size": 9, fill: "#333" });
    label.textContent = text;
    svg.append(label);
  }
  const key = document.createElement("div");
  key.className = "chart-key";
  for (const [name, s] of series) {
    const points = s.values.map((v, k) => `${x(k).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    svg.append(svgElement("polyline", { points, fill: "none", stroke: s.color, "stroke-width": 2,
      "stroke-dasharray": s.dashed ? "4 3" : "none", "data-class": name }));
    s.values.forEach((v, k) => svg.append(svgElement("circle", { cx: x(k), cy: y(v), r: 2.5, fill: s.color })));
    const entry = document.createElement("span");
    entry.innerHTML = `<span class="swatch" style="display:inline-block;background:${s.color}"></span> `;
    entry.append(name);
    key.append(entry);
  }
  el("chart").replaceChildren(svg, key);
}

function fillDates(dates) {
  const options = (select) => select.replaceChildren(...dates.map((d) => new Option(d.date, d.date)));
  options(el("change-before"));
  options(el("change-after"));
  if (dates.length) el("change-after").value = dates[dates.length - 1].date;
  const collection = collections.find((c) => c.id === el("collection").value);
  el("change-to").replaceChildren(new Option("any class", ""),
    ...classesOf(collection).map((c) => new Option(c.title || c.name, c.title || c.name)));
}

async function chartClassAreas() {
  setStatisticsStatus("Counting…", "counting");
  const extra = {};
  if (el("start").value) extra.start_date = `${el("start").value}T00:00:00Z`;
  if (el("end").value) extra.end_date = `${el("end").value}T23:59:59Z`;
  try {
    const dates = (await getJson(`/v1/statistics:area?${statisticsQuery(extra)}`)).dates || [];
    if (!dates.length) {
      el("chart").replaceChildren();
      setStatisticsStatus("No map of this model in the area and dates.", "charted");
      return;
    }
    drawChart(dates);
    fillDates(dates);
    setStatisticsStatus(`${dates.length} date${dates.length === 1 ? "" : "s"} in the area`, "charted");
  } catch (error) {
    setStatisticsStatus(`Statistics failed: ${error.message}`, "failed", true);
  }
}

function matrixRow(cells, header = false) {
  const row = document.createElement("tr");
  for (const [text, numeric] of cells) {
    const cell = document.createElement(header ? "th" : "td");
    cell.textContent = text;
    if (numeric) cell.className = "number";
    row.append(cell);
  }
  return row;
}

function showChange(answer) {
  changeLayers.getLayers().clear();
  for (const tileMap of answer.maps || []) {
    changeLayers.getLayers().push(new ol.layer.Image({ zIndex: CHANGE_Z, source: new ol.source.ImageStatic({
      url: `data:image/png;base64,${tileMap.map.png}`, imageExtent: tileMap.map.bounds3857,
      projection: "EPSG:3857" }) }));
  }
  const changed = (answer.matrix || []).filter((t) => t.before.name !== t.after.name).slice(0, 12);
  el("change-matrix").replaceChildren(
    matrixRow([["Before"], ["After"], ["Area", true], ["On the map"]], true),
    ...changed.map((t) => matrixRow([[t.before.name], [t.after.name], [hectares(t.hectares), true],
      [t.mapValue ? "yes" : ""]])));
  const skipped = (answer.cloudHectares || 0) + (answer.nodataHectares || 0) + (answer.noMapHectares || 0);
  setStatisticsStatus(`Compared ${hectares(answer.comparedHectares)}; not compared ${hectares(skipped)} ` +
    `(clouds ${hectares(answer.cloudHectares)}, no data ${hectares(answer.nodataHectares)}, no map ` +
    `${hectares(answer.noMapHectares)})`, "compared");
}

async function compareDates() {
  const before = el("change-before").value, after = el("change-after").value;
  if (!before || !after) {
    setStatisticsStatus("Chart the class areas first, then pick two dates.", "idle", true);
    return;
  }
  setStatisticsStatus("Comparing…", "comparing");
  const extra = { before_start: `${before}T00:00:00Z`, after_start: `${after}T00:00:00Z` };
  if (el("change-to").value) extra.to_categories = el("change-to").value;
  try {
    showChange(await getJson(`/v1/statistics:change-pictures?${statisticsQuery(extra)}`));
  } catch (error) {
    setStatisticsStatus(`Comparison failed: ${error.message}`, "failed", true);
  }
}

el("chart-run").addEventListener("click", chartClassAreas);
el("change-run").addEventListener("click", compareDates);
