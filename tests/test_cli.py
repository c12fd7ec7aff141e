"""The commands a user types, run through the real CLI."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.conftest import point_at

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures"


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return result.output


def test_generate_writes_the_raw_contract_and_prints_stats(tmp_path):
    out = invoke("generate", "--preset", "tiny", "--out", str(tmp_path / "raw"), "--stats")
    assert (tmp_path / "raw" / "events.parquet").exists()
    assert (tmp_path / "raw" / "items.parquet").exists()
    for property_heading in (
        "C1 high turnover",
        "C2 thorough comparison",
        "C3 attribute-driven",
        "C4 diverse queries",
    ):
        assert property_heading in out


def test_generate_rejects_an_unknown_preset(tmp_path):
    result = runner.invoke(app, ["generate", "--preset", "huge", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "not a preset" in result.output


def test_tables_and_sql_read_the_built_warehouse(tiny_home):
    out = invoke("tables")
    for mart in ("main.prompt_inputs", "main.splits", "main.query_listings", "main.quarantine"):
        assert mart in out
    out = invoke("sql", "select count(*) as n from splits where split = 'test'")
    assert "n" in out


def test_own_logs_with_malformed_rows_build_and_land_in_quarantine(tmp_path, monkeypatch):
    """FASHIONREC_RAW_DIR=<own files> FASHIONREC_HOME=<empty dir> fashionrec run 'group:warehouse'."""
    raw_dir = FIXTURES / "raw_malformed"
    home = tmp_path / "home"
    point_at(monkeypatch, home, raw_dir)
    out = invoke("run", "group:warehouse")
    assert "0 failed" in out

    raw_events = pd.read_csv(raw_dir / "events.csv", dtype=str)
    with duckdb.connect(str(home / "fashionrec.duckdb"), read_only=True) as con:
        quarantined = con.execute("select count(*) from quarantine where source = 'events'").fetchone()[0]
        clean = con.execute("select count(*) from stg_raw__events").fetchone()[0]
        no_reason = con.execute(
            "select count(*) from quarantine where reason is null or reason = ''"
        ).fetchone()[0]
    assert quarantined > 0
    assert clean + quarantined == len(raw_events)
    assert no_reason == 0


@pytest.mark.parametrize("selection", ["group:nope", "key:not_an_asset"])
def test_run_with_a_selection_that_matches_nothing_says_so(tiny_home, selection):
    result = runner.invoke(app, ["run", selection])
    assert result.exit_code != 0
