"""Where benchmarks write their figures: ``benchmarks/results/<name>.json``, stamped with the date and the
machine so a reader knows what the numbers describe."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, figures: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    stamp = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
             "cpus": os.cpu_count()}
    out.write_text(json.dumps({**stamp, **figures}, indent=1))
    print(f"written {out}")
    return out
