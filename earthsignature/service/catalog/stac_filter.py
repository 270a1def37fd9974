"""CQL2 filters (the STAC API filter extension) as conditions on the catalog's tables.

A filter arrives as CQL2 text or CQL2 JSON; ``cql2`` (the reference parser) turns either into CQL2 JSON, and
this module turns that tree into one SQLAlchemy condition over products, segmentations and class
statistics. Only what is listed in ``CONFORMANCE`` is understood: basic CQL2 (comparisons, ``and``/``or``/
``not``, ``isNull``), the advanced comparison operators (``like``, ``between``, ``in``) and ``s_intersects``;
anything else is refused with a message naming it. Literals are always bound parameters.

Queryable properties, their SQL and the kind of their values are the records of ``queryables`` (the same
records name the STAC items' properties and the ``/queryables`` schema).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from shapely.errors import ShapelyError
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from earthsignature.service.catalog.areas import area_problem
from earthsignature.service.catalog.moments import BadMoment, parse_moment
from earthsignature.service.catalog.parser_pool import ParseRefused, ParserPool
from earthsignature.service.catalog.queryables import FRACTION_PREFIX, NewestFirst, queryable

#: CQL2 conformance classes this translation implements (the STAC API declares exactly these).
CONFORMANCE = (
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
)
MAX_FILTER_CHARS = 20_000
MAX_DEPTH = 32
#: cql2's parser recurses on nesting (parentheses, NOT, unary minus) and crashes the process past a few
#: thousand levels, so nesting is measured before a filter reaches it.
MAX_NESTING = 64
#: operations in one filter (comparisons, and/or/not branches...): a pilot's filter holds a handful; an OR of
#: 3,000 comparisons kept PostgreSQL busy for 102 s
MAX_TERMS = 64
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"])*\"|\(|\)|\bnot\b|-|[^\s()'\"-]+|\s+", re.IGNORECASE)


class FilterError(ValueError):
    """A filter this catalog cannot evaluate; the message says what to change."""


def parse(expression: str | Mapping[str, Any], language: str | None, parsers: ParserPool,
          max_terms: int = MAX_TERMS) -> dict[str, Any]:
    """CQL2 text or JSON (a string or a parsed object) -> CQL2 JSON, or ``FilterError``.

    The parse runs in ``parsers``' worker processes under a time and memory budget (cql2 backtracks on some
    inputs); the cheap checks before it (length, nesting) only refuse early with a clearer message. A filter
    of more than ``max_terms`` operations is refused: each costs the catalog a scan of its candidates."""
    if isinstance(expression, str) and len(expression) > MAX_FILTER_CHARS:
        raise FilterError(f"the filter is longer than {MAX_FILTER_CHARS} characters")
    if isinstance(expression, str) and (language == "cql2-json" or expression.lstrip().startswith("{")):
        try:
            expression = json.loads(expression)
        except (ValueError, RecursionError) as error:
            raise FilterError(f"the filter is not valid JSON: {str(error)[:200]}") from error
    depth = _json_depth(expression) if not isinstance(expression, str) else _text_depth(expression)
    if depth > MAX_NESTING:
        raise FilterError(f"the filter nests deeper than {MAX_NESTING} levels")
    try:
        tree = parsers.parse_cql2(expression, language)
    except ParseRefused as error:
        raise FilterError(str(error)) from None
    if _json_depth(tree) > MAX_NESTING:
        raise FilterError(f"the filter nests deeper than {MAX_NESTING} levels")
    terms = _operations(tree)
    if terms > max_terms:
        raise FilterError(f"the filter has {terms} operations; at most {max_terms} are allowed "
                          "(api.limits.max_filter_terms)")
    return tree


def _operations(tree) -> int:
    """How many operations (``{"op": ...}`` nodes) a CQL2 JSON tree holds (an ``in`` list is one)."""
    count, stack = 0, [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping) and "op" in node:
            count += 1
            stack.extend(node.get("args") or ())
    return count


def _text_depth(text: str) -> int:
    """How deep CQL2 text nests: open parentheses plus a run of prefix operators (NOT, unary minus)."""
    deepest = depth = prefixes = 0
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token.isspace():
            continue
        if token == "(":
            depth += 1
        elif token == ")":
            depth = max(0, depth - 1)
        if token == "-" or token.lower() == "not":
            prefixes += 1
        elif token != "(":
            prefixes = 0
        deepest = max(deepest, depth + prefixes)
    return deepest


def _json_depth(tree) -> int:
    """How deep a parsed JSON value nests (iteratively: the value may be deeper than Python's recursion)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            break
        children = node.values() if isinstance(node, Mapping) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def condition(tree: Mapping[str, Any], depth: int = 0, newest: NewestFirst | None = None) -> sa.ColumnElement[bool]:
    """One CQL2 JSON expression -> a boolean SQL condition. Operands are typed (string, number, timestamp,
    geometry) and an operator accepts only operands of one kind it supports, so no filter reaches PostgreSQL
    as a type error. ``newest`` (a search's page) reaches the comparisons every result must meet, those of
    the top-level ``and``, never those under ``or`` or ``not``: a bounded set of maps would change those."""
    if depth > MAX_DEPTH:
        raise FilterError(f"the filter nests deeper than {MAX_DEPTH} levels")
    if isinstance(tree, bool):
        return sa.true() if tree else sa.false()
    if not isinstance(tree, Mapping) or "op" not in tree:
        raise FilterError(f"expected a CQL2 operation, got {json.dumps(tree)[:80]}")
    op, args = str(tree["op"]).lower(), list(tree.get("args") or [])
    if op in ("and", "or"):
        parts = [condition(arg, depth + 1, newest if op == "and" else None) for arg in args]
        return sa.and_(*parts) if op == "and" else sa.or_(*parts)
    if op == "not":
        return sa.not_(condition(_count(args, 1, op)[0], depth + 1))
    if op == "isnull":
        (node,) = _count(args, 1, op)
        if not _is_property(node):
            raise FilterError("isNull takes a property")
        return _typed(node, None)[0].is_(None)
    if op in _COMPARISONS:
        indexed = _indexed_comparison(_count(args, 2, op), _COMPARISONS[op], newest)
        if indexed is not None:
            return indexed
        left, right = _same_kind(args, op, ("string", "number", "timestamp"))
        return _COMPARISONS[op](left, right)
    if op == "like":
        pattern = _count(args, 2, op)[1]
        if isinstance(pattern, str) and (len(pattern) - len(pattern.rstrip("\\"))) % 2:
            raise FilterError("a like pattern may not end with its escape character (\\)")
        left, right = _same_kind(args, op, ("string",))
        return left.like(right)
    if op == "between":
        if len(args) == 2 and isinstance(args[1], list):  # the drafts' [property, [low, high]] (STAC validators)
            args = [args[0], *args[1]]
        value, low, high = _same_kind(_count(args, 3, op), op, ("string", "number", "timestamp"))
        return value.between(low, high)
    if op == "in":
        node, values = _count(args, 2, op)
        if not isinstance(values, list) or not values or len(values) > MAX_IN_VALUES:
            raise FilterError(f"in takes a property and a list of 1 to {MAX_IN_VALUES} values")
        first, *rest = _same_kind([node, *values], op, ("string", "number", "timestamp"))
        return first.in_(rest)
    if op == "s_intersects":
        left, right = _same_kind(_count(args, 2, op), op, ("geometry",))
        return sa.func.ST_Intersects(left, right)
    raise FilterError(f"the operator {op[:40]!r} is not supported here; supported: and, or, not, =, <>, <, <=, >, "
                      ">=, isNull, like, between, in, s_intersects")


_COMPARISONS = {"=": lambda a, b: a == b, "<>": lambda a, b: a != b, "<": lambda a, b: a < b,
                "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
MAX_IN_VALUES = 1_000


def _indexed_comparison(args: list, compare, newest: NewestFirst | None) -> sa.ColumnElement[bool] | None:
    """``property <compare> number`` in the form the property's record says an index answers (a class
    share), or None."""
    node, number = args
    if not _is_property(node) or isinstance(number, bool) or not isinstance(number, int | float):
        return None
    record = queryable(str(node["property"]))
    if record is None or record.where is None or not math.isfinite(number):
        return None
    return record.where(compare, float(number), newest)


def _count(args: list, expected: int, op: str) -> list:
    if len(args) != expected:
        raise FilterError(f"{op} takes {expected} argument{'s' if expected > 1 else ''}, got {len(args)}")
    return args


def _is_property(node) -> bool:
    return isinstance(node, Mapping) and "property" in node


def _same_kind(nodes: list, op: str, kinds: tuple[str, ...]) -> list[sa.ColumnElement]:
    """The operands as SQL, all of one kind that ``op`` supports (a property's kind decides how literals read)."""
    expected = next((_property(str(n["property"]))[1] for n in nodes if _is_property(n)), None)
    typed = [_typed(node, expected) for node in nodes]
    found = {kind for _, kind in typed}
    if len(found) != 1 or not found <= set(kinds):
        raise FilterError(f"{op} compares {' and '.join(sorted(found))} operands; it takes "
                          f"{' or '.join(kinds)} operands of one kind")
    return [expression for expression, _ in typed]


def _property(name: str) -> tuple[sa.ColumnElement, str]:
    record = queryable(name)
    if record is None:
        raise FilterError(f"unknown property {name[:60]!r}: see /queryables (e.g. eo:cloud_cover, "
                          f"{FRACTION_PREFIX}burnt_areas)")
    return record.sql(), record.kind


def _typed(node, expected: str | None) -> tuple[sa.ColumnElement, str]:
    """A property, or a literal bound as a parameter, with its kind."""
    if _is_property(node):
        return _property(str(node["property"]))
    if isinstance(node, Mapping) and ("timestamp" in node or "date" in node):
        return sa.literal(moment(node.get("timestamp") or node.get("date"))), "timestamp"
    if isinstance(node, Mapping) and "type" in node:
        return from_shape(_geometry(node), srid=4326), "geometry"
    if isinstance(node, bool) or node is None or isinstance(node, Mapping | list):
        raise FilterError(f"unsupported operand {json.dumps(node)[:80]}")
    if isinstance(node, int | float):
        if not math.isfinite(node):
            raise FilterError(f"{node} is not a finite number")
        return sa.literal(float(node)), "number"
    text = str(node)
    if any(ord(c) < 32 for c in text):
        raise FilterError(f"{json.dumps(text)[:40]} holds control characters")
    if expected == "timestamp":
        return sa.literal(moment(text)), "timestamp"
    return sa.literal(text), "string"


def _geometry(node: Mapping[str, Any]) -> BaseGeometry:
    try:
        geometry = shape(node)
        problem = area_problem(geometry)
    except (ShapelyError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise FilterError(f"not a GeoJSON geometry: {str(error)[:100]}") from error
    if problem:
        raise FilterError(f"the geometry {problem}")
    return geometry


def moment(text) -> datetime:
    """``moments.parse_moment``, failing as ``FilterError``."""
    try:
        return parse_moment(text)
    except BadMoment as error:
        raise FilterError(str(error)) from None
