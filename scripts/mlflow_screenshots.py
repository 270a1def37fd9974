"""The README's MLflow pictures: the demo's CLC training run and the model version it registered, as the
MLflow UI shows them (after `make demo`).

Starts `mlflow server` over the tracking store on 127.0.0.1, opens the run named ``smoke (demo clc)`` and
the newest version of ``clc-unet-smoke`` in Debian's headless Chromium (the one `make setup` installs),
writes ``docs/mlflow-run.png`` and ``docs/mlflow-model-version.png``, and stops the server.

    .venv/bin/python scripts/mlflow_screenshots.py [--tracking-uri sqlite:///var/mlflow.db] [--out docs]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

RUN_NAME = "smoke (demo clc)"
MODEL = "clc-unet-smoke"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the MLflow server at {url} did not answer in {timeout_s:.0f} s")


def _close_assistant(page) -> None:
    """MLflow 3's assistant panel takes a third of the page: closed when it is open."""
    header = page.get_by_text("MLflow Assistant")
    if header.count():
        header.first.locator("xpath=ancestor::div[.//button][1]").locator("button").last.click()
        page.wait_for_timeout(500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default="sqlite:///var/mlflow.db")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    from mlflow.tracking import MlflowClient
    from playwright.sync_api import sync_playwright

    client = MlflowClient(args.tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              f"tags.mlflow.runName = '{RUN_NAME}'", order_by=["attributes.start_time DESC"])
    if not runs:
        raise SystemExit(f"no run named {RUN_NAME!r} in {args.tracking_uri}: run `make demo` first")
    run = runs[0]
    version = max(client.search_model_versions(f"name = '{MODEL}'"), key=lambda v: int(v.version))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri",
                               args.tracking_uri, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(url)
        pages = {"mlflow-run.png": (f"{url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}",
                                    RUN_NAME),
                 "mlflow-model-version.png": (f"{url}/#/models/{MODEL}/versions/{version.version}", MODEL)}
        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                for name, (address, shown) in pages.items():
                    page.goto(address)
                    page.get_by_text(shown).first.wait_for(timeout=60_000)
                    page.wait_for_timeout(4000)  # the UI polls: never idle; its panels fill in a moment
                    _close_assistant(page)
                    page.screenshot(path=str(args.out / name))
                    print(f"wrote {args.out / name}")
            finally:
                browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
