"""A real Triton Inference Server on this machine, for development and the integration tests.

The ``nvidia-pytriton`` wheel ships a genuine ``tritonserver`` (Triton 2.51) with the Python backend
only. pytriton itself pins numpy<2, so we do not install it: ``install`` downloads the wheel with pip
(no dependencies) and extracts just the server, its libraries and the Python 3.11 backend stub into
``var/triton``. ``LocalTritonServer`` starts that binary on 127.0.0.1 over a model repository:

* the backend stub links a ``libpython3.11``; this interpreter's LIBDIR goes first in
  ``LD_LIBRARY_PATH`` or model loading fails (ENVIRONMENT.md);
* Triton 2.51's Python backend is built against the numpy 1 C API: with numpy 2 its output tensors come
  back empty. Python-backend models (``model.py`` running ONNX Runtime) therefore import numpy<2 and
  onnxruntime from a small environment of their own, ``var/triton/python-env``, whose site-packages
  reach them as ``EARTHSIGNATURE_PYTHONPATH`` (the stub's embedded interpreter ignores PYTHONPATH).

Production runs NVIDIA's Triton container with the onnxruntime backend on the same repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path

from earthsignature.core.config import state_home
from earthsignature.embedded.ports import free_port

WHEEL = "nvidia-pytriton==0.7.0"
#: what the Python-backend models import (numpy 1: see the module docstring)
STUB_PACKAGES = ("numpy<2", "onnxruntime==1.32.0")
DEFAULT_HOME = state_home() / "triton"
_SERVER = "pytriton/tritonserver"
_LIBS = "nvidia_pytriton.libs"


class TritonUnavailable(RuntimeError):
    """The server binary is not installed or did not start; the message says what to do."""


def server_binary(home: Path = DEFAULT_HOME) -> Path:
    return Path(home) / _SERVER / "bin" / "tritonserver"


def stub_site_packages(home: Path = DEFAULT_HOME) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return Path(home) / "python-env" / "lib" / version / "site-packages"


def _install_stub_environment(home: Path) -> None:
    env_dir = home / "python-env"
    if stub_site_packages(home).joinpath("onnxruntime").exists():
        return
    base = getattr(sys, "_base_executable", sys.executable)  # a venv made from the base interpreter
    for command in ([base, "-m", "venv", "--clear", str(env_dir)],
                    [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", *STUB_PACKAGES]):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise TritonUnavailable(f"{' '.join(command[:4])} failed: {result.stderr.strip()[-500:]}")


def install(home: Path = DEFAULT_HOME) -> Path:
    """Extract the Triton server from the pytriton wheel into ``home`` and make the Python-backend
    environment (each once); return the binary."""
    home = Path(home)
    binary = server_binary(home)
    if binary.exists():
        _install_stub_environment(home)
        return binary
    with tempfile.TemporaryDirectory() as tmp:
        download = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, WHEEL]
        result = subprocess.run(download, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise TritonUnavailable(f"pip could not download {WHEEL}: {result.stderr.strip()[-500:]}")
        staging = Path(tempfile.mkdtemp(dir=home.parent if home.parent.exists() else None))
        with zipfile.ZipFile(wheels[0]) as wheel:
            for member in wheel.namelist():
                if member.startswith((_SERVER + "/", _LIBS + "/")):
                    wheel.extract(member, staging)
    stub = staging / _SERVER / "python_backend_stubs" / "3.11" / "triton_python_backend_stub"
    shutil.copy(stub, staging / _SERVER / "backends" / "python" / stub.name)
    for executable in (staging / _SERVER / "bin" / "tritonserver",
                       staging / _SERVER / "backends" / "python" / stub.name):
        executable.chmod(0o755)
    home.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(home, ignore_errors=True)
    staging.rename(home)
    _install_stub_environment(home)
    return binary


class LocalTritonServer:
    """``with LocalTritonServer(repository) as server: server.grpc_url``; stops what it started."""

    def __init__(self, repository: Path, home: Path = DEFAULT_HOME, model_control: str = "poll",
                 poll_seconds: int = 1, log_file: Path | None = None):
        self.repository, self.home = Path(repository), Path(home)
        self.model_control, self.poll_seconds = model_control, poll_seconds
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        self.log_file = Path(log_file) if log_file else self.repository.parent / "tritonserver.log"
        self.process: subprocess.Popen | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        libraries = [sysconfig.get_config_var("LIBDIR"), str(self.home / _LIBS), env.get("LD_LIBRARY_PATH")]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, libraries))
        # read by the generated model.py: the stub's embedded interpreter ignores PYTHONPATH
        env["EARTHSIGNATURE_PYTHONPATH"] = str(stub_site_packages(self.home))
        return env

    def start(self, timeout_s: float = 60.0) -> LocalTritonServer:
        binary = server_binary(self.home)
        if not binary.exists():
            raise TritonUnavailable(f"no Triton server at {binary}: run `make triton` (or "
                                    "`python -m earthsignature.embedded.triton install`)")
        command = [
            str(binary), f"--model-repository={self.repository}",
            f"--backend-directory={self.home / _SERVER / 'backends'}",
            f"--model-control-mode={self.model_control}", f"--repository-poll-secs={self.poll_seconds}",
            "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
            "--http-address=127.0.0.1", f"--http-port={self.http_port}",
            f"--metrics-port={self.metrics_port}", "--allow-metrics=false", "--strict-readiness=true",
        ]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            env=self.environment())
        self._wait_live(timeout_s)
        return self

    def _wait_live(self, timeout_s: float) -> None:
        import tritonclient.grpc as triton

        client = triton.InferenceServerClient(self.grpc_url)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    code = self.process.returncode
                    raise TritonUnavailable(f"tritonserver exited ({code}):\n{self.log_tail()}")
                try:
                    if client.is_server_live():
                        return
                except triton.InferenceServerException:
                    pass
                time.sleep(0.2)
        finally:
            client.close()
        self.stop()
        raise TritonUnavailable(f"tritonserver not live after {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> LocalTritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m earthsignature.embedded.triton install")
    print(install())
