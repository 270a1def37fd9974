"""The dependency rules of DESIGN.md, checked on the real import graph (the static rules are
pyproject.toml's import-linter contracts, run by `make test`)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import earthsignature.cli
import earthsignature.client
import earthsignature.core
import earthsignature.embedded
import earthsignature.samples
import earthsignature.service

#: What a service-only install (`pip install .`, no `ml` extra) runs.
TORCH_FREE = (earthsignature.core, earthsignature.samples, earthsignature.service, earthsignature.client,
              earthsignature.embedded, earthsignature.cli)


def _torch_free_modules() -> list[str]:
    return sorted(m.name for package in TORCH_FREE
                  for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
                  if not m.name.endswith(".__main__"))  # running the command is not importing it


def test_services_run_without_torch_or_the_training_code() -> None:
    modules = _torch_free_modules()
    assert "earthsignature.service.inference.backends" in modules and "earthsignature.cli.api" in modules
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                       check=True).stdout)
    forbidden = [m for m in loaded if m.split(".")[0] in ("torch", "lightning", "torchgeo")
                 or m.startswith(("earthsignature.train", "earthsignature.models", "earthsignature.export"))]
    assert forbidden == []
