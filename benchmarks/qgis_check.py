"""Debian's QGIS opens a pilot's map links: the check the issue asked for outside `make test` (Debian's QGIS
packages are large, so `make setup` does not install them; `make qgis-check` does, then runs this).

1. A private PostGIS cluster, the project's certificates and `earthsignature serve` in its own process, on
   127.0.0.1; a few products stored (class maps with a no-data edge, burnt areas, clouds).
2. A pilot asks the STAC API for an item with its certificate; its links go to Debian's Python with Debian's
   PyQGIS (`benchmarks/qgis_open_map.py`, offscreen), which presents no certificate: the class map by its
   signed link (Add Raster Layer > HTTP(S)), the item's QGIS style (Load Style), the XYZ tiles (XYZ Layer).
3. Judged here: each layer opens; QGIS's legend names the map's classes (from the `.aux.xml` beside the COG
   and from the style) in the colours of the STAC item's classification; every colour QGIS draws is a legend
   colour (or the tiles' cloud white).

    python benchmarks/qgis_check.py [--products 3]

Prints a table and writes benchmarks/results/qgis_check.json; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

from results_file import write_results  # benchmarks/results_file.py, beside this script
from served import Server, clients, prepare  # benchmarks/served.py, beside this script

from earthsignature.core.cog import CLOUD_COLOR
from earthsignature.embedded.postgres import scratch_cluster
from earthsignature.samples.requests import product_request

DEBIAN_PYTHON = "/usr/bin/python3"  # Debian's PyQGIS (python3-qgis) is built for it
OPEN_MAP = Path(__file__).resolve().parent / "qgis_open_map.py"
TILES = ("34SGH", "31TCJ", "35VLG")


def pilot_item(certs, http_port: int) -> dict:
    """The first STAC item a pilot finds, asked with its certificate."""
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    pilot = certs.identity("pilot")
    context.load_cert_chain(str(pilot.cert), str(pilot.key))
    url = f"https://127.0.0.1:{http_port}/stac/search?collections=clc-unet&limit=1"
    with urllib.request.urlopen(url, context=context, timeout=60) as response:
        return json.load(response)["features"][0]


def open_in_qgis(item: dict, ca: Path) -> dict:
    """What Debian's QGIS makes of the item's links (``qgis_open_map.py``'s answer)."""
    xyz = next(link["href"] for link in item["links"] if link["rel"] == "xyz")
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("GDAL_", "PROJ_", "PYTHON", "VIRTUAL_ENV"))}  # the venv's are not Debian's
    environment |= {"QT_QPA_PLATFORM": "offscreen", "GDAL_CURL_CA_BUNDLE": str(ca), "CURL_CA_BUNDLE": str(ca),
                    "SSL_CERT_FILE": str(ca), "XDG_RUNTIME_DIR": str(ca.parent)}
    result = subprocess.run([DEBIAN_PYTHON, str(OPEN_MAP), item["assets"]["classes"]["href"],
                             item["assets"]["style"]["href"], xyz, str(ca)], capture_output=True, text=True,
                            timeout=300, env=environment)
    if result.returncode != 0:
        raise RuntimeError(f"Debian's PyQGIS failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def judge(item: dict, seen: dict) -> list[dict]:
    """One row per check: what was expected, what QGIS showed, passed."""
    classes = {c["value"]: c for c in item["assets"]["classes"]["classification:classes"] if not c.get("nodata")}
    colours = {tuple(int(c["color_hint"][k:k + 2], 16) for k in (0, 2, 4)) for c in classes.values()}
    rows = []

    def check(name: str, passed: bool, detail: str) -> None:
        rows.append({"check": name, "passed": bool(passed), "detail": detail})

    for layer in ("classes", "styled", "tiles"):
        check(f"{layer}: opens without a certificate", seen.get(layer, {}).get("valid"),
              seen.get(layer, {}).get("error", seen.get(layer, {}).get("provider", "")))
    for layer in ("classes", "styled"):
        answer = seen.get(layer, {})
        labels = {entry["value"]: entry["label"] for entry in answer.get("legend", [])}
        named = [v for v, c in classes.items() if labels.get(v) == c["title"]]
        check(f"{layer}: legend names the map's classes", len(named) == len(classes),
              f"{len(named)} of {len(classes)} named as the STAC item names them")
        legend_colours = {v: tuple(e["rgb"]) for v, e in ((e["value"], e) for e in answer.get("legend", []))}
        same = [v for v, c in classes.items() if legend_colours.get(v) in colours]
        check(f"{layer}: legend colours are the item's", len(same) == len(classes), f"{len(same)} of {len(classes)}")
    for layer, allowed in (("classes", colours), ("styled", colours), ("tiles", colours | {CLOUD_COLOR})):
        drawn = {tuple(int(v) for v in key.split(",")): n for key, n in seen.get(layer, {}).get("drawn", {}).items()}
        stray = sum(n for colour, n in drawn.items() if colour not in allowed)
        total = sum(drawn.values())
        check(f"{layer}: every drawn colour is a legend colour", total > 0 and stray == 0,
              f"{total} pixels drawn, {stray} in other colours, {len(drawn)} colours")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=3)
    args = parser.parse_args()
    if not Path(DEBIAN_PYTHON).exists() or subprocess.run([DEBIAN_PYTHON, "-c", "import qgis.core"],
                                                          capture_output=True).returncode != 0:
        print("Debian's PyQGIS is missing: `make qgis-check` installs python3-qgis and qgis-providers", file=sys.stderr)
        return 2
    with scratch_cluster("earthsignature-qgis-") as (cluster, work):
        url, certs, address, http_port = prepare(cluster, work)
        server = Server([f"db.url={url}", f"api.address={address}", f"api.http_port={http_port}",
                         f"api.store_url={work / 'store'}", f"api.certs_dir={certs.path}",
                         "api.store_check_min_age_s=0"], work / "server.log")
        factory = clients(certs, address)
        server.start(factory)
        try:
            with factory("internal") as internal:
                for number in range(args.products):
                    internal.create(product_request(number, TILES[number % len(TILES)], size=240,
                                                    burnt_share=0.3, cloud=20.0))
            item = pilot_item(certs, http_port)
            seen = open_in_qgis(item, Path(certs.ca_cert))
        finally:
            server.stop()
    rows = judge(item, seen)
    print(f"{'check':<52} {'passed':>6}  detail")
    for row in rows:
        print(f"{row['check']:<52} {'yes' if row['passed'] else 'NO':>6}  {row['detail']}")
    qgis = subprocess.run([DEBIAN_PYTHON, "-c", "from qgis.core import Qgis; print(Qgis.version())"],
                          capture_output=True, text=True, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    write_results("qgis_check", {"qgis": qgis.stdout.strip(), "item": item["id"], "checks": rows,
                                 "layers": {k: {n: v for n, v in layer.items() if n != "drawn"} | {
                                     "colours_drawn": len(layer.get("drawn", {}))} for k, layer in seen.items()}})
    return 0 if all(row["passed"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
