"""The earthsignature command line, run in-process through click."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from earthsignature.cli import main
from earthsignature.core.readers import open_product
from earthsignature.embedded.ports import free_port
from earthsignature.service.catalog.schema import head_revision


def run(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.output


def test_help_lists_the_commands() -> None:
    output = run("--help")
    for command in ("db", "classes", "fixtures", "demo"):
        assert command in output


def test_classes_table_json_and_lookup_errors() -> None:
    assert "#00a600  Coniferous forest" in run("classes")
    records = json.loads(run("classes", "hrl", "--format", "json"))
    assert [r["name"] for r in records] == ["Imperviousness", "Tree cover", "Grassland", "Water and wetness"]
    assert 312 in records[1]["clc_codes"]
    assert "Burnt areas" in run("classes", "--lookup", "334")
    assert "did you mean 'Coniferous forest'" in run("classes", "--lookup", "conifer", expect=1)


def test_fixtures_safe_writes_readable_products(tmp_path: Path) -> None:
    output = run("fixtures", "safe", str(tmp_path), "--tile", "31TCJ", "--tile", "33UUP", "--size", "60",
                 "--date", "2021-08-02T10:56:21", "--cloud-cover", "0")
    paths = [Path(line) for line in output.split()]
    assert [open_product(p).tile_id for p in paths] == ["31TCJ", "33UUP"]
    assert "multiple of 6" in run("fixtures", "safe", str(tmp_path), "--size", "50", expect=2)
    item = Path(run("fixtures", "safe", str(tmp_path / "items"), "--size", "60", "--baseline", "0509",
                    "--cog-item", "harmonised").strip())
    product = open_product(item)
    assert (product.layout, product.offset, product.processing_baseline) == ("STAC-COG", 0, "05.09")
    assert "Earth Search's COG layout is for L2A" in run("fixtures", "safe", str(tmp_path / "items"), "--size",
                                                          "60", "--level", "L1C", "--cog-item", "raw", expect=2)


def test_fixtures_bigearthnet_and_pairs(tmp_path: Path) -> None:
    assert "12 patches" in run("fixtures", "bigearthnet", str(tmp_path / "ben"), "--patches-per-tile", "4")
    assert (tmp_path / "ben" / "metadata.parquet").exists()
    assert "4 pairs" in run("fixtures", "pairs", str(tmp_path / "ua"), "--nomenclature", "urban_atlas",
                            "--samples", "4", "--size", "32")


@pytest.mark.postgis
def test_db_lifecycle_through_config_overrides() -> None:
    parent = Path(tempfile.mkdtemp(prefix="earthsignature-cli-"))
    parent.chmod(0o755)  # as root the server user must traverse it
    overrides = [f"db.data_dir={parent / 'pg'}", f"db.port={free_port()}", "db.name=cli_catalog"]
    try:
        assert "not initialised" in run("db", "status", *overrides, expect=3)
        url = run("db", "up", *overrides).strip()
        assert url.endswith("/cli_catalog") and url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
        assert run("db", "url", *overrides).strip() == url
        assert "running on 127.0.0.1" in run("db", "status", *overrides)
        assert run("db", "up", *overrides).strip() == url  # idempotent
        assert f"catalog schema at revision {head_revision()}" in run("db", "migrate", *overrides)
        run("db", "down", *overrides)
        assert "stopped" in run("db", "status", *overrides, expect=3)
    finally:
        run("db", "down", *overrides)
        shutil.rmtree(parent, ignore_errors=True)


def test_db_refuses_to_manage_an_external_database() -> None:
    output = run("db", "up", "db.url=postgresql+psycopg://user@db.example:5432/catalog", expect=1)
    assert "not ours to manage" in output
    assert run("db", "url", "db.url=postgresql+psycopg://u@h/c").strip() == "postgresql+psycopg://u@h/c"


def test_hydra_options_may_follow_the_overrides() -> None:
    """`train a=1 --multirun b=1,2` as the README writes it: Hydra's parser wants its options first."""
    import subprocess
    import sys

    from earthsignature.cli.ml import flags_first

    assert flags_first(["experiment=smoke", "--multirun", "model.base_width=8,16"]) == [
        "--multirun", "experiment=smoke", "model.base_width=8,16"]
    assert flags_first(["a=1", "--cfg", "job", "b=2", "-cn", "finetune"]) == ["--cfg", "job", "-cn", "finetune",
                                                                            "a=1", "b=2"]
    shown = subprocess.run([sys.executable, "-m", "earthsignature.cli", "train", "experiment=smoke", "--cfg", "job",
                            "model.base_width=8"], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert "base_width: 8" in shown.stdout


def test_a_bad_override_fails_before_torch_is_imported() -> None:
    """`train trainer.max_epochs=abc`: a one-line error at once, not after torch and Lightning have loaded."""
    import subprocess
    import sys

    probe = ("import sys\nfrom click.testing import CliRunner\nfrom earthsignature.cli import main\n"
             "result = CliRunner().invoke(main, ['train', 'trainer.max_epochs=abc'])\n"
             "print(result.exit_code, 'torch' in sys.modules, result.output.strip())")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    code, torch_loaded, message = done.stdout.split(" ", 2)
    assert (code, torch_loaded) == ("1", "False"), done.stdout + done.stderr
    assert "trainer.max_epochs" in message and "Traceback" not in done.stdout + done.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    """`earthsignature train --help | head`: no BrokenPipeError, no error line."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "earthsignature.cli", "train", "--help"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the command writes: its first write finds the pipe closed
    stderr = process.stderr.read().decode()
    process.wait(300)
    assert stderr == "" and process.returncode in (0, 141), stderr


@pytest.mark.parametrize("lightning_first", [True, False])
def test_logging_prints_each_record_once_at_the_chosen_level(lightning_first: bool) -> None:
    """Lightning logs at INFO whatever the level asked, with a handler of its own when imported first: the CLI's
    configuration sends its records through one handler at the chosen level."""
    imports = ["import lightning.pytorch", "from earthsignature.cli import configure_logging"]
    script = "; ".join([*(imports if lightning_first else imports[::-1]), "import logging",
                        "configure_logging('warning')", "import lightning.pytorch",
                        "log = logging.getLogger('lightning.pytorch.utilities.rank_zero')",
                        "log.info('hidden info'); log.warning('shown warning')"])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "hidden info" not in result.stderr and result.stderr.count("shown warning") == 1
