"""The command line answers bad input and unexpected errors in one line, never with a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from earthsignature.cli import main


@pytest.mark.parametrize("arguments", [
    ["monitor", "run", "--date", "2021-13-01"], ["monitor", "status", "--date", "nope"],
    ["query", "list", "--start", "yesterday"], ["fixtures", "safe", "out", "--date", "2021-02-30"],
])
def test_bad_dates_are_usage_errors(arguments) -> None:
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 2 and "is not an ISO date" in result.output
    assert "Traceback" not in result.output


def test_an_unexpected_error_is_one_line(monkeypatch) -> None:
    def broken(name):
        raise RuntimeError("the legend file is unreadable")

    monkeypatch.setattr("earthsignature.cli.data.get_nomenclature", broken)
    result = CliRunner().invoke(main, ["classes", "clc_level3"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: RuntimeError: the legend file is unreadable (--log-level debug shows where)"]


def test_version_and_log_level() -> None:
    assert CliRunner().invoke(main, ["--version"]).output.startswith("earthsignature, version ")
    result = CliRunner().invoke(main, ["--log-level", "loud", "classes"])
    assert result.exit_code == 2 and "'loud' is not one of" in result.output
