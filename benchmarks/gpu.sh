#!/usr/bin/env bash
# The GPU benchmark in one call (a few minutes): the seed-size model on ONNX Runtime's CUDA and TensorRT
# providers beside its CPU one, and JPEG 2000 decoding, written to benchmarks/results/gpu.json with the
# device named. On a machine without an NVIDIA GPU or without onnxruntime-gpu, the GPU rows are recorded
# as not measured, with the reason, and the CPU rows still are. Arguments go to gpu.py (--help).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-../.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
export PYTHONUNBUFFERED=1
"$PYTHON" gpu.py "$@"
if [ -n "${OUT:-}" ]; then cp results/gpu.json "$OUT/"; fi  # a device machine's way back
