"""The server processes keep freed memory for the next answer: an answer's large arrays stop faulting their
pages in again (``service/api/allocator.py``)."""

from __future__ import annotations

import json
import subprocess
import sys

#: answers as a server process makes them: a pool of threads, each answer allocating and freeing arrays of
#: 1 to 16 MiB (windows, masks, encodings); the page faults of 20 answers after the first ones
PROGRAM = """
import json, resource, sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from earthsignature.service.api.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "kept" else None
def answer(_):
    for size in (1, 4, 8, 2, 16):
        np.ones(size * 1024 * 1024, dtype=np.uint8).sum()
with ThreadPoolExecutor(4) as pool:
    list(pool.map(answer, range(4)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    list(pool.map(answer, range(20)))
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def faults(mode: str) -> dict:
    result = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, timeout=60,
                            check=True)
    return json.loads(result.stdout)


def test_freed_arrays_are_reused_instead_of_faulted_in_again() -> None:
    default, kept = faults("default"), faults("kept")
    assert kept["kept"] is True  # glibc (Debian, the project's machines) took every setting
    # 20 answers of 31 MiB are 158,720 pages: by default many are mapped, faulted in and unmapped again
    assert default["faults"] > 500, default
    assert kept["faults"] < default["faults"] / 10, (kept, default)
