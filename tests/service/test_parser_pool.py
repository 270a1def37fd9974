"""The CQL2 parser processes: a runaway parse is killed at its budget and replaced, and closing the pool ends
every process it started."""

from __future__ import annotations

import pytest

from earthsignature.service.catalog.parser_pool import ParseRefused, ParserPool


@pytest.fixture
def pool():
    parsers = ParserPool(processes=1, timeout_s=0.5)
    yield parsers
    parsers.close()


def test_a_parse_comes_back_as_cql2_json(pool) -> None:
    assert pool.parse_cql2("eo:cloud_cover > 5", "cql2-text") == {
        "op": ">", "args": [{"property": "eo:cloud_cover"}, 5.0]}
    with pytest.raises(ParseRefused, match="not valid CQL2"):
        pool.parse_cql2("eo:cloud_cover >", "cql2-text")


def test_a_runaway_parse_is_killed_and_its_process_replaced(pool) -> None:
    pool.parse_cql2("a = 1", None)
    (first,) = list(pool._idle.queue)
    with pytest.raises(ParseRefused, match="within its budget"):
        pool.parse_cql2("(" * 30 + "a=" + ")" * 30, None)  # backtracks for minutes unbounded
    assert first.process.poll() is not None  # killed
    (second,) = list(pool._idle.queue)
    assert second is not first and second.process.poll() is None
    assert pool.parse_cql2("a = 1", None)["op"] == "="


def test_closing_ends_every_process(pool) -> None:
    pool.parse_cql2("a = 1", None)
    processes = [worker.process for worker in pool._idle.queue]
    pool.close()
    assert processes and all(process.poll() is not None for process in processes)
    with pytest.raises(ParseRefused, match="stopping"):
        pool.parse_cql2("a = 1", None)
