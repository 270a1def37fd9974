"""What each monitor step leaves for the next, and what a failure leaves for ``monitor status``.

Typed records, written as JSON by ``save`` (atomically: a worker killed mid-write leaves no record, so the
step runs again) and read back by ``load`` into the same record, nested records and times included. They
are the steps' Luigi targets (see ``core.layout.MonitorWorkFolder`` for where each one lives).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

Record = TypeVar("Record")


@dataclass(frozen=True)
class FoundProduct:
    """A product the day's search found, as the provider described it."""

    product_id: str  # ESA's product name where the provider gives it (s2:product_uri), else its id
    start: datetime
    cloud_cover: float | None
    tile_id: str
    layout: str  # "SAFE" (an archive to download) or "STAC-COG" (band assets read in place)


@dataclass(frozen=True)
class SkippedProduct:
    """A product the provider returned that was not what was asked (another day, outside the area)."""

    product_id: str
    reason: str


@dataclass(frozen=True)
class DaySearch:
    """``Search``'s output: the day's products, and what the provider returned beyond them."""

    day: date
    products: list[FoundProduct] = field(default_factory=list)
    skipped: list[SkippedProduct] = field(default_factory=list)


@dataclass(frozen=True)
class FetchedProduct:
    """``Fetch``'s output: where the product is readable as L2A on this worker (a SAFE folder, a COG item's
    record, or the L2A that Sen2Cor made of an L1C product)."""

    product_id: str
    location: str


@dataclass(frozen=True)
class Segmentation:
    """``Segment``'s output: one model's maps of one product (COGs in the model's output folder)."""

    product_location: str
    model_id: str  # name:version
    classes: Path
    confidence: Path
    cloud_mask: Path
    pixel_counts: list[int]  # per output channel, valid pixels only
    height: int
    width: int


@dataclass(frozen=True)
class Published:
    """``Publish``'s output on this worker: what the Database service answered."""

    product_id: str
    segmentation_id: str
    created: bool


@dataclass(frozen=True)
class Failure:
    """Why a step failed, kept where ``monitor run`` and ``monitor status`` read it (workers may be other
    processes); removed when the step later succeeds."""

    task: str  # the Luigi task id
    product_id: str
    model: str | None  # the model key (name-vVERSION) for Segment and Publish
    step: str  # fetch, process, segment, publish
    error: str  # the exception's class: DownloadError, ProcessingError, PublishError...
    message: str
    time: datetime
    attempt: int  # 1 for the first failure of this task, then counting

    def line(self) -> str:
        """``step [model] of product (attempt n, time): Error: message``, as ``monitor run`` and the demo print it."""
        model = f" {self.model}" if self.model else ""
        return (f"{self.step}{model} of {self.product_id or 'the day'} (attempt {self.attempt}, "
                f"{self.time:%Y-%m-%d %H:%M:%S} UTC): {self.error}: {self.message}")


def save(path: Path, record: object) -> None:
    """Write ``record`` as JSON at ``path``, atomically (replacing an older record: a failure's next attempt)."""
    path, text = Path(path), json.dumps(_plain(record), indent=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}-", delete=False) as temporary:
        temporary.write(text)
    try:
        os.replace(temporary.name, path)
    except OSError:
        Path(temporary.name).unlink(missing_ok=True)
        raise


def load(kind: type[Record], path: Path) -> Record:
    """The ``kind`` record saved at ``path``."""
    return _build(kind, json.loads(Path(path).read_text()))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def _build(kind: Any, value: Any) -> Any:
    """``value`` (from JSON) as the type ``kind``: records field by field, lists item by item."""
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):  # X | None
        return _build(next(a for a in typing.get_args(kind) if a is not type(None)), value)
    if origin is list:
        return [_build(typing.get_args(kind)[0], v) for v in value]
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(**{f.name: _build(hints[f.name], value[f.name]) for f in dataclasses.fields(kind)})
    if kind in (datetime, date):
        return kind.fromisoformat(value)
    if kind is Path:
        return Path(value)
    return value
