"""reBEN's own fast format: BigEarthNet v2 as an LMDB of safetensors records, and the packer that writes it.

The layout is the one reBEN's tooling writes (rico-hdl) and ConfigILM reads: one LMDB folder
``BigEarthNet-V2-LMDB`` beside ``metadata.parquet``; the key of a record is the patch name (``S2A_MSIL2A_
…_26_57`` for Sentinel-2, ``S1A_IW_GRDH_…`` for Sentinel-1); its value is a safetensors dictionary of one
array per band at the band's own resolution (uint16 ``B02`` 120 x 120, ``B05`` 60 x 60, ``B01`` 20 x 20;
float32 ``VV``/``VH``). A Sentinel-2 record packed here also holds the patch's CLC reference map
(``reference_map``, uint16 120 x 120), which ConfigILM ignores, so one read gives image and mask.

A sample comes out the same whichever source it is read from: both the GeoTIFF dataset and this one read
each band at its native resolution and bring it to the 120 x 120 grid with ``to_patch_grid``, so a packed
release gives bit-identical tensors.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import torch
import torch.nn.functional as F
from torch import Tensor

LMDB_FOLDER = "BigEarthNet-V2-LMDB"
REFERENCE_MAP = "reference_map"
PATCH_SIZE = 120


def to_patch_grid(band: np.ndarray, size: int = PATCH_SIZE) -> Tensor:
    """One band on the patch's 120 x 120 grid, float32: 10 m bands as they are, 20 m and 60 m bands
    upsampled bilinearly (pixel centres aligned)."""
    values = torch.from_numpy(np.ascontiguousarray(band, dtype=np.float32))
    if values.shape == (size, size):
        return values
    return F.interpolate(values[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]


class PackedPatches:
    """Read-only access to the records of a ``BigEarthNet-V2-LMDB`` folder (opened lazily, so each data
    loader worker opens its own environment after the fork)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not (self.folder / "data.mdb").exists():
            raise FileNotFoundError(f"{self.folder} is not an LMDB folder (no data.mdb): pack the release with "
                                    "`earthsignature data pack`")
        self._env = None

    def _environment(self):
        if self._env is None:
            self._env = _open_environment(str(self.folder.resolve()))
        return self._env

    def __getitem__(self, key: str) -> dict[str, np.ndarray]:
        from safetensors.numpy import load

        with self._environment().begin(write=False, buffers=True) as txn:
            value = txn.get(key.encode())
            if value is None:
                raise KeyError(f"{key} is not in {self.folder}")
            return load(bytes(value))

    def keys(self) -> list[str]:
        with self._environment().begin(write=False) as txn:
            return [key.decode() for key in txn.cursor().iternext(values=False)]

    def __getstate__(self) -> dict:  # an open LMDB environment does not cross a fork or a pickle
        return {**self.__dict__, "_env": None}


#: folder -> (pid, environment): LMDB refuses to open a folder twice in one process.
_ENVIRONMENTS: dict[str, tuple[int, object]] = {}


def _open_environment(folder: str):
    """The process's read-only environment for ``folder``. One inherited through a fork (a DataLoader worker
    started after the parent read a sample) is closed and reopened: LMDB handles must not cross a fork."""
    import lmdb

    opened = _ENVIRONMENTS.get(folder)
    if opened is not None and opened[0] == os.getpid():
        return opened[1]
    if opened is not None:
        opened[1].close()
    env = lmdb.open(folder, readonly=True, lock=False, readahead=False, meminit=False, max_readers=256)
    _ENVIRONMENTS[folder] = (os.getpid(), env)
    return env


def image(record: Mapping[str, np.ndarray], bands: Iterable[str]) -> Tensor:
    """float32 [bands, 120, 120] digital numbers from a record's native-resolution bands."""
    return torch.stack([to_patch_grid(record[name]) for name in bands])


def pack_release(root: str | Path, with_s1: bool = True) -> tuple[int, Path]:
    """Pack the reBEN release at ``root`` (``BigEarthNet-S2``, ``Reference_Maps``, optional
    ``BigEarthNet-S1``, ``metadata.parquet``) into ``root/BigEarthNet-V2-LMDB``; return (records, folder).

    Written into a ``.partial`` folder and renamed: a reader never sees half a pack."""
    import lmdb
    from safetensors.numpy import save

    root = Path(root)
    metadata = pd.read_parquet(root / "metadata.parquet")
    target, partial = root / LMDB_FOLDER, root / f".{LMDB_FOLDER}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    records = 0
    env = lmdb.open(str(partial), map_size=_map_size(len(metadata)), subdir=True)
    try:
        with env.begin(write=True) as txn:
            for row in metadata.itertuples(index=False):
                record = _s2_record(root, str(row.patch_id))
                txn.put(str(row.patch_id).encode(), save(record))
                records += 1
                s1_name = str(getattr(row, "s1_name", "") or "")
                s1_dir = patch_dir(root / "BigEarthNet-S1", s1_name) if s1_name else None
                if with_s1 and s1_dir is not None and s1_dir.exists():
                    txn.put(s1_name.encode(), save(_bands_in(s1_dir, s1_name, ("VV", "VH"))))
                    records += 1
    finally:
        env.close()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return records, target


def patch_dir(folder: Path, patch_id: str) -> Path:
    """reBEN's folders: ``<product folder>/<patch id>/``; the product folder is the patch id without its row
    and column (Sentinel-2), or without its tile, row and column (Sentinel-1)."""
    suffix_parts = 3 if patch_id.startswith("S1") else 2
    return folder / "_".join(patch_id.split("_")[:-suffix_parts]) / patch_id


def _bands_in(folder: Path, patch_id: str, names: Iterable[str]) -> dict[str, np.ndarray]:
    found = {}
    for name in names:
        with rasterio.open(folder / f"{patch_id}_{name}.tif") as dataset:
            found[name] = dataset.read(1)
    return found


def _s2_record(root: Path, patch_id: str) -> dict[str, np.ndarray]:
    from earthsignature.core.sentinel2 import L2A_BANDS

    folder = patch_dir(root / "BigEarthNet-S2", patch_id)
    record = _bands_in(folder, patch_id, L2A_BANDS)
    maps = patch_dir(root / "Reference_Maps", patch_id)
    with rasterio.open(maps / f"{patch_id}_reference_map.tif") as dataset:
        record[REFERENCE_MAP] = dataset.read(1).astype(np.uint16)
    return record


def _map_size(patches: int) -> int:
    """LMDB reserves its map up front (virtual memory, written sparsely): 1 MB per patch covers a Sentinel-2
    record (about 190 kB with its map) and a Sentinel-1 one (115 kB), plus 64 MB."""
    return patches * (1 << 20) + (64 << 20)
