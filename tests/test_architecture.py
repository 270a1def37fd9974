"""The dependency rules of DESIGN.md, checked on the real import graph."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import earthsignature.service


def _service_modules() -> list[str]:
    prefix = earthsignature.service.__name__ + "."
    return sorted(m.name for m in pkgutil.walk_packages(earthsignature.service.__path__, prefix))


def test_services_run_without_torch_or_the_training_code() -> None:
    modules = _service_modules()
    assert "earthsignature.service.model.backends" in modules
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
