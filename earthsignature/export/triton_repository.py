"""Write exported models into a Triton model repository.

Layout, one folder per model, one sub-folder per registry version::

    REPOSITORY/NAME/config.pbtxt        built from Triton's own protobuf schema (model_config_pb2)
    REPOSITORY/NAME/labels.txt          class names, one per output channel
    REPOSITORY/NAME/manifest.json       the manifest of the newest version
    REPOSITORY/NAME/<version>/model.onnx (+ manifest.json; + model.py for the Python backend)

A newly promoted version arrives as a new version folder (written aside, then renamed into place), so a
server in ``poll`` or ``explicit`` model-control mode serves it without a restart; the version policy
keeps the newest ``num_versions`` loaded. ``backend="onnxruntime"`` (``platform: onnxruntime_onnx``) is
for production servers (an int8 export, ``export --int8``, on CPU instances only); ``backend="python"``
wraps the same ONNX file in a Python-backend ``model.py`` running ONNX Runtime, for servers built without
the onnxruntime backend (such as the one the tests run).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from earthsignature.core.layout import ModelFolder
from earthsignature.core.manifest import ModelManifest

PYTHON_MODEL = '''"""Triton Python backend: the ONNX model beside this file, run with ONNX Runtime (CPU).
Written by earthsignature.export.triton_repository; do not edit."""

import json
import os
import sys

# The backend stub's embedded interpreter ignores PYTHONPATH; a server started with numpy and
# onnxruntime elsewhere names their site-packages here.
for _path in reversed(os.environ.get("EARTHSIGNATURE_PYTHONPATH", "").split(os.pathsep)):
    if _path and _path not in sys.path:
        sys.path.insert(0, _path)

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        folder = os.path.join(args["model_repository"], args["model_version"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("EARTHSIGNATURE_ORT_THREADS", "0"))
        self.session = ort.InferenceSession(os.path.join(folder, "__ONNX_NAME__"), options,
                                            providers=["CPUExecutionProvider"])
        config = json.loads(args["model_config"])
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]

    def execute(self, requests):
        responses = []
        for request in requests:
            image = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
            output = self.session.run(None, {self.input_name: image.astype(np.float32)})[0]
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output_name, output)]))
        return responses
'''


@dataclass(frozen=True)
class ServingOptions:
    backend: str = "onnxruntime"  # or "python"
    max_batch_size: int = 32
    preferred_batch_sizes: tuple[int, ...] = (8, 16)
    max_queue_delay_us: int = 500
    instance_kind: str = "cpu"  # or "gpu"
    instance_count: int = 1
    num_versions: int = 2

    def __post_init__(self) -> None:
        if self.backend not in ("onnxruntime", "python"):
            raise ValueError(f"backend must be onnxruntime or python, not {self.backend!r}")
        if self.instance_kind not in ("cpu", "gpu"):
            raise ValueError(f"instance_kind must be cpu or gpu, not {self.instance_kind!r}")
        if any(size > self.max_batch_size for size in self.preferred_batch_sizes):
            raise ValueError(f"preferred batch sizes {self.preferred_batch_sizes} exceed {self.max_batch_size}")


def model_config(manifest: ModelManifest, options: ServingOptions) -> mc.ModelConfig:
    """The model's config.pbtxt. Inputs and outputs keep their float types for an int8 model too (the
    quantization is inside its graph); such a model is for CPU instances only."""
    if manifest.quantization is not None and options.instance_kind == "gpu":
        raise ValueError(f"{manifest.model_id} is int8, quantized for CPUs (ONNX Runtime's CPU kernels); "
                         "deploy its float export on GPU instances")
    config = mc.ModelConfig(name=manifest.name, max_batch_size=options.max_batch_size)
    if options.backend == "onnxruntime":
        config.platform = "onnxruntime_onnx"
    else:
        config.backend = "python"
    config.input.add(name=manifest.input_name, data_type=mc.TYPE_FP32, dims=[len(manifest.bands), -1, -1])
    config.output.add(name=manifest.output_name,
                      data_type=mc.TYPE_FP16 if manifest.output_dtype == "float16" else mc.TYPE_FP32,
                      dims=[manifest.num_classes, -1, -1], label_filename="labels.txt")
    config.dynamic_batching.preferred_batch_size.extend(options.preferred_batch_sizes)
    config.dynamic_batching.max_queue_delay_microseconds = options.max_queue_delay_us
    kind = mc.ModelInstanceGroup.KIND_CPU if options.instance_kind == "cpu" else mc.ModelInstanceGroup.KIND_GPU
    config.instance_group.add(count=options.instance_count, kind=kind)
    config.version_policy.latest.num_versions = options.num_versions
    return config


def parse_config(path: Path) -> mc.ModelConfig:
    """Parse a config.pbtxt with Triton's schema (raises on any unknown or mistyped field)."""
    return text_format.Parse(Path(path).read_text(), mc.ModelConfig())


def write_model(repository: Path, onnx_path: Path, manifest: ModelManifest,
                options: ServingOptions = ServingOptions()) -> Path:
    """Add ``manifest.version`` of the model to the repository; return its version folder."""
    if not manifest.version or not str(manifest.version).isdigit():
        raise ValueError(f"Triton versions are positive integers; the manifest has {manifest.version!r}")
    model_dir = Path(repository) / manifest.name
    version_dir = model_dir / str(manifest.version)
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".{manifest.version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    staged = ModelFolder(staging)
    shutil.copyfile(onnx_path, staged.onnx)
    manifest.save(staged.manifest)
    if options.backend == "python":
        (staging / "model.py").write_text(PYTHON_MODEL.replace("__ONNX_NAME__", ModelFolder.ONNX_NAME))
    # Config and labels first: a polling server sees a complete model when the version appears.
    _replace_text(model_dir / "config.pbtxt", text_format.MessageToString(model_config(manifest, options)))
    _replace_text(model_dir / "labels.txt", "".join(f"{c.name}\n" for c in manifest.classes))
    if version_dir.exists():
        shutil.rmtree(version_dir)
    staging.rename(version_dir)
    newest = max(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
    if int(manifest.version) == newest:
        manifest.save(ModelFolder(model_dir).manifest)  # the newest version describes the model
    return version_dir


def _replace_text(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)
