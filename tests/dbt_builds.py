"""dbt builds of hand-made raw data for the warehouse tests: a build directory per raw scenario, dbt run
in process on the warehouse models only, and the DuckDB file released afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from dbt.adapters.duckdb.connections import DuckDBConnectionManager
from dbt.cli.main import dbtRunner

from fashionrec.settings import DBT_PROJECT_DIR
from warehouse.raw_files import dbt_env

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MARTS = ("items", "sessions", "query_listings", "user_sequences", "splits", "prompt_inputs")


@dataclass(frozen=True)
class Build:
    home: Path
    raw_dir: Path
    target_dir: Path

    @property
    def database(self) -> Path:
        return self.home / "fashionrec.duckdb"

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.database), read_only=True) as con:
            return con.execute(sql).fetchall()


def release_duckdb() -> None:
    """Close the DuckDB instance that dbt-duckdb keeps open in its class after an in-process run.

    Until then this process cannot open the database file with other settings (read-only here).
    """
    environment = DuckDBConnectionManager._ENV
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()


def run_dbt(args: list[str], build: Build, select: str | None = None) -> None:
    """Run dbt on the warehouse models, or only on ``select`` (a dbt node selection) when given."""
    env = dbt_env(build.home, build.raw_dir)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        result = dbtRunner().invoke(
            [
                *args,
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--target-path",
                str(build.target_dir),
                "--log-path",
                str(build.target_dir / "logs"),
                # the warehouse models only: models reading later pipeline stages are not tested here
                *(["--select", select] if select else ["--selector", "warehouse"]),
            ]
        )
    release_duckdb()
    if not result.success:
        failures = []
        for node_result in getattr(result.result, "results", None) or []:
            if str(node_result.status) not in ("success", "pass", "warn"):
                failures.append(f"{node_result.node.unique_id}: {node_result.status}: {node_result.message}")
        raise AssertionError(f"dbt {args[0]} failed: {result.exception or ''}\n" + "\n".join(failures))


def make_build(tmp_path_factory: pytest.TempPathFactory, name: str, raw_dir: Path) -> Build:
    root = tmp_path_factory.mktemp(name)
    home = root / "home"
    home.mkdir()
    return Build(home=home, raw_dir=raw_dir, target_dir=root / "target")


def count_differences(first: Build, second: Build, table: str, columns: str = "*") -> tuple[int, int]:
    """(rows of ``table`` in ``first``, rows that are in only one of the two builds, copies counted)."""
    with duckdb.connect() as con:
        con.execute(f"attach '{first.database}' as first_build (read_only)")
        con.execute(f"attach '{second.database}' as second_build (read_only)")
        first_rows = f"select {columns} from first_build.main.{table}"
        second_rows = f"select {columns} from second_build.main.{table}"
        [(n_rows,)] = con.execute(f"select count(*) from ({first_rows})").fetchall()
        [(n_different,)] = con.execute(
            f"select count(*) from (({first_rows} except all {second_rows}) "
            f"union all ({second_rows} except all {first_rows}))"
        ).fetchall()
    return n_rows, n_different
