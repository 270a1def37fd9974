"""SearchSegmentation's text query language, translated to the same filters as ListSegmentation.

A query is a list of terms separated by spaces; every term must hold:

=====================================  ==============================================================
``forest burnt``                       free words, matched with PostgreSQL full-text search (stemmed,
                                       English) against class names, product ids, tiles, models
``class:burnt`` ``class:"burnt areas"``  a class by name or code (``class:312``); several: any of them
``fraction>=0.2``                      minimum share of the product that the classes must cover
``after:2021-08-01`` ``before:2021-08-31T12:00``  acquisition period (ISO dates, UTC)
``tile:34SGH``                         MGRS tile (repeatable)
``product:S2A_MSIL2A_...``             product id (repeatable)
``model:clc-unet``                     model name (repeatable)
``cloud<20`` ``cloud<=20``             cloud-cover ceiling, percent
``bbox:lon_min,lat_min,lon_max,lat_max``  area, EPSG:4326
=====================================  ==============================================================

Malformed queries raise ``QuerySyntaxError`` with the 0-based character position of the fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from earthsignature.core.sentinel2 import is_tile_id
from earthsignature.service.catalog.moments import BadMoment, parse_moment

_TERM = re.compile(r'(?P<key>[A-Za-z_]+)(?P<op>:|<=|>=|<|>)(?P<value>"[^"]*"|[^\s"]+)')
_WORD = re.compile(r'[^\s:<>="]+')
_OPEN_QUOTE = re.compile(r'[A-Za-z_]+(?::|<=|>=|<|>)"')
_KEYS = {"class", "fraction", "after", "before", "tile", "product", "model", "cloud", "bbox"}


class QuerySyntaxError(ValueError):
    MAX_MESSAGE = 160  # the query's own text is echoed only this far

    def __init__(self, message: str, position: int):
        if len(message) > self.MAX_MESSAGE:
            message = message[: self.MAX_MESSAGE] + "…"
        super().__init__(f"query error at position {position}: {message}")
        self.position = position


@dataclass
class ParsedQuery:
    words: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    min_fraction: float = 0.0
    start: datetime | None = None
    end: datetime | None = None
    tile_ids: list[str] = field(default_factory=list)
    product_ids: list[str] = field(default_factory=list)
    model_names: list[str] = field(default_factory=list)
    max_cloud_cover: float | None = None
    area: BaseGeometry | None = None


def parse(query: str) -> ParsedQuery:
    parsed = ParsedQuery()
    position = 0
    while position < len(query):
        if query[position].isspace():
            position += 1
            continue
        term = _TERM.match(query, position)
        if term and term.group("key").lower() in _KEYS:
            _apply(parsed, term.group("key").lower(), term.group("op"), term.group("value"), term.start("value"))
            position = term.end()
            continue
        if term:
            raise QuerySyntaxError(f"unknown term {term.group('key')!r}; terms are {', '.join(sorted(_KEYS))}",
                                   position)
        open_quote = _OPEN_QUOTE.match(query, position)
        if open_quote:
            raise QuerySyntaxError("unterminated quote", open_quote.end() - 1)
        if query[position] == '"':
            raise QuerySyntaxError("unterminated or misplaced quote", position)
        word = _WORD.match(query, position)
        if not word:
            raise QuerySyntaxError(f"unexpected {query[position]!r}", position)
        end = word.end()
        if end < len(query) and not query[end].isspace():
            raise QuerySyntaxError(f"unexpected {query[end]!r} after {word.group()!r}", end)
        parsed.words.append(word.group())
        position = end
    return parsed


def _apply(parsed: ParsedQuery, key: str, op: str, raw: str, at: int) -> None:
    value = raw[1:-1] if raw.startswith('"') else raw
    expected = {"cloud": ("<", "<="), "fraction": (">=", ">")}.get(key, (":",))
    if op not in expected:
        raise QuerySyntaxError(f"{key} takes {' or '.join(expected)}, not {op}", at - len(op))
    if not value:
        raise QuerySyntaxError(f"{key} needs a value", at)
    if key == "class":
        parsed.categories.append(value)
    elif key in ("after", "before"):
        moment = _datetime(value, at)
        if key == "after":
            parsed.start = moment
        else:
            parsed.end = moment
    elif key == "tile":
        if not is_tile_id(value):
            raise QuerySyntaxError(f"{value!r} is not an MGRS tile such as 34SGH", at)
        parsed.tile_ids.append(value.upper().removeprefix("T"))
    elif key == "product":
        parsed.product_ids.append(value)
    elif key == "model":
        parsed.model_names.append(value)
    elif key == "cloud":
        parsed.max_cloud_cover = _number(value, at, 0, 100)
    elif key == "fraction":
        parsed.min_fraction = _number(value, at, 0, 1)
    elif key == "bbox":
        parsed.area = _bbox(value, at)


def _number(value: str, at: int, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise QuerySyntaxError(f"{value!r} is not a number", at) from None
    if not low <= number <= high:
        raise QuerySyntaxError(f"{number} is outside [{low}, {high}]", at)
    return number


def _datetime(value: str, at: int) -> datetime:
    try:
        return parse_moment(value)
    except BadMoment:
        raise QuerySyntaxError(f"{value[:40]!r} is not an ISO date such as 2021-08-01 (years 1..9999 in UTC)",
                               at) from None


def _bbox(value: str, at: int) -> BaseGeometry:
    parts = value.split(",")
    if len(parts) != 4:
        raise QuerySyntaxError("bbox needs lon_min,lat_min,lon_max,lat_max", at)
    try:
        lon_min, lat_min, lon_max, lat_max = (float(p) for p in parts)
    except ValueError:
        raise QuerySyntaxError(f"bbox {value!r} holds a value that is not a number", at) from None
    if not (-180 <= lon_min < lon_max <= 180 and -90 <= lat_min < lat_max <= 90):
        raise QuerySyntaxError("bbox must be lon_min < lon_max in [-180, 180], lat_min < lat_max in [-90, 90]",
                               at)
    return box(lon_min, lat_min, lon_max, lat_max)
