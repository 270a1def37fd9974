"""The README's pilot examples, run as written on a catalog holding what `make demo` stores.

The catalog: the demo's two served models (`clc-unet-smoke` with CLC classes, `burnt-unet-smoke` with "Not
burnt" and "Burnt") on tile 34SGH on the demo's two days, ingested through CreateProduct. The examples are
read from README.md's "Querying" and "STAC API" sections: each `earthsignature query` command (through the
CLI), each Python block (executed) and each `curl` command (Debian's curl), with only the address, the
certificate paths and the output folder replaced by this test's; each must answer with results. (grpcurl
is not packaged by Debian: its example is not run here.)
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from earthsignature.core import raster_codec
from earthsignature.pb.snapearth.api.v1 import segmentation_pb2
from earthsignature.samples.requests import product_request

from .api_fixtures import client_of, server_with_http_app

pytestmark = pytest.mark.postgis
README = Path(__file__).resolve().parents[2] / "README.md"
SECTIONS = ("### Querying", "### STAC API")
DEMO_DAYS = (0, 5)  # 2021-08-01 and 2021-08-06
BURNT_LEGEND = [(0, 0, "Not burnt", 0xC8C8C8), (1, 1, "Burnt", 0xC81E00)]


def demo_maps(number: int, day: int) -> list:
    """The demo's two served models' maps of 34SGH on ``day``: a CLC map, and a burnt-area one with a fire."""
    clc = product_request(number, "34SGH", day=day, model="clc-unet-smoke", cloud=4.0)
    burnt = product_request(number, "34SGH", day=day, model="burnt-unet-smoke", cloud=4.0)
    fire = np.zeros((120, 120), dtype=np.uint8)
    fire[30:70, 40:90] = 1  # 14 % burnt
    crs = burnt.segmentation.crs
    burnt.segmentation.CopyFrom(raster_codec.encode(fire, segmentation_pb2.RASTER_ENCODING_ZSTD,
                                                    list(burnt.segmentation.geotransform), crs))
    del burnt.classes[:]
    for value, code, name, color in BURNT_LEGEND:
        burnt.classes.add(value=value, code=code, name=name, color=color)
    return [clc, burnt]


@pytest.fixture(scope="module")
def demo_catalog(module_db, tmp_path_factory):
    with server_with_http_app(module_db, tmp_path_factory.mktemp("readme")) as (certs, server, gateway):
        with client_of(certs, server) as client:
            for number, day in enumerate(DEMO_DAYS, start=1):
                for request in demo_maps(number, day):
                    client.create(request)
        yield certs, f"127.0.0.1:{server.port}", f"https://127.0.0.1:{gateway.port}"


def examples(kind: str) -> list[str]:
    """The README's examples of one kind in the pilots' sections: ``query`` commands, ``python`` blocks,
    ``curl`` commands (continuation lines joined)."""
    text = README.read_text()
    found = []
    for section in SECTIONS:
        body = text.split(section, 1)[1].split("\n### ", 1)[0]
        for language, block in re.findall(r"```(\w+)\n(.*?)```", body, re.S):
            if kind == "python" and language == "python":
                found.append(block)
            elif language == "sh":
                start = "earthsignature query " if kind == "query" else f"{kind} "
                found += [line for line in block.replace("\\\n", " ").splitlines() if line.startswith(start)]
    return found


def localised(text: str, certs, address: str, root: str, out: Path) -> str:
    """An example with this test's server, certificates and output folder in place of the README's."""
    key, cert = certs.pilot
    for old, new in (("es.example.org:50051", address), ("127.0.0.1:50051", address),
                     ("https://127.0.0.1:8443", root), ("acme.crt", str(cert)), ("acme.key", str(key)),
                     ("ca.crt", str(certs.ca.cert_path)), ("maps/", f"{out}/"), ('"map.tif"', f'"{out}/map.tif"')):
        text = text.replace(old, new)
    return text


def test_the_readme_has_the_pilot_examples() -> None:
    assert len(examples("query")) == 2 and len(examples("python")) == 2 and len(examples("curl")) == 1


@pytest.mark.parametrize("number", range(2))
def test_each_query_command_answers(demo_catalog, tmp_path, number: int) -> None:
    from earthsignature.cli import main

    certs, address, root = demo_catalog
    command = localised(examples("query")[number], certs, address, root, tmp_path)
    key, cert = certs.pilot
    arguments = shlex.split(command)[1:]
    if "--address" not in arguments:  # the README's second command takes the demo's defaults
        arguments += ["--address", address, "--ca", str(certs.ca.cert_path), "--cert", str(cert), "--key", str(key)]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    counted = re.search(r"(\d+) result\(s\)", result.output)
    assert counted and int(counted.group(1)) >= 1, result.output
    assert list(tmp_path.glob("*.tif")) and list(tmp_path.glob("*.png"))  # --save wrote maps and pictures


@pytest.mark.parametrize("number", range(2))
def test_each_python_example_prints_results(demo_catalog, tmp_path, monkeypatch, number: int) -> None:
    certs, address, root = demo_catalog
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca.cert_path))  # as the pystac-client example says
    code = localised(examples("python")[number], certs, address, root, tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"README python example {number + 1}", "exec"), {})
    assert printed.getvalue().strip(), code


def test_the_curl_example_answers(demo_catalog, tmp_path) -> None:
    certs, address, root = demo_catalog
    command = localised(examples("curl")[0], certs, address, root, tmp_path)
    answer = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60, check=True).stdout
    assert answer.startswith('{"result":') and "burnt-unet-smoke" in answer
