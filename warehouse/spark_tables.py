"""A Spark build of the warehouse, published to the steps after it as DuckDB views over its Parquet tables.

The target ``spark`` writes every model as a Parquet table under ``$FASHIONREC_HOME/spark/tables``
(docs/spark.md). Everything after the warehouse (the Python assets, the evaluation, the service, the
benchmarks) reads the marts from the DuckDB file, so after a Spark build each model it built becomes a view
``main.<model>`` there, ``select ... from read_parquet('<its folder>/*.parquet')``: the readers do not
change, the rows are Spark's, and a later Spark build is seen without publishing again (the view reads
the folder when queried).

The views give the readers the types DuckDB's own build gives them. Spark writes timestamps as UTC
instants (``TIMESTAMP WITH TIME ZONE`` to DuckDB), where DuckDB's models keep naive UTC timestamps, so
each one, at any depth of a list or struct, is read back through ``timezone('UTC', ...)``, which does not
depend on the reader's time zone setting. Spark has no JSON type: ``items.attributes`` and
``quarantine.raw_row`` stay VARCHAR, which DuckDB's JSON functions accept as they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from fashionrec.settings import Paths

# DuckDB's schema for the marts: the one the `duckdb` target builds into (profiles.yml).
DUCKDB_SCHEMA = "main"


def publish_build(
    con: duckdb.DuckDBPyConnection, where: Paths, run_results: Mapping[str, Any], manifest: Mapping[str, Any]
) -> list[str]:
    """:func:`publish` every model of one Spark dbt command, from that command's artifacts."""
    return publish(con, where, list(built_models(run_results, manifest)))


def built_models(run_results: Mapping[str, Any], manifest: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(schema, table)`` of every model a dbt command built successfully, from its run results and
    manifest (the artifacts of that command, so the schema is the Spark target's)."""
    for result in run_results["results"]:
        unique_id = result["unique_id"]
        if unique_id.startswith("model.") and result["status"] == "success":
            node = manifest["nodes"][unique_id]
            yield node["schema"], node["alias"]


def _utc_naive(expression: str, kind: pa.DataType, depth: int = 0) -> str:
    """``expression`` of Arrow type ``kind`` with every timestamp carrying a time zone turned into its
    naive UTC timestamp; the expression itself when nothing in it has one."""
    if not _has_zoned_timestamp(kind):
        return expression
    if pa.types.is_timestamp(kind):
        return f"timezone('UTC', {expression})"
    if pa.types.is_struct(kind):
        members = ", ".join(
            f'"{field.name}" := {_utc_naive(f"{expression}.{_quoted(field.name)}", field.type, depth)}'
            for field in kind
        )
        return f"struct_pack({members})"
    if _is_list(kind):
        element = f"element_{depth}"
        inner = _utc_naive(element, kind.value_type, depth + 1)
        return f"list_transform({expression}, lambda {element}: {inner})"
    raise TypeError(f"cannot convert the timestamps inside a column of type {kind}")


def _has_zoned_timestamp(kind: pa.DataType) -> bool:
    if pa.types.is_timestamp(kind):
        return kind.tz is not None
    if pa.types.is_struct(kind):
        return any(_has_zoned_timestamp(field.type) for field in kind)
    if _is_list(kind):
        return _has_zoned_timestamp(kind.value_type)
    if pa.types.is_map(kind):
        return _has_zoned_timestamp(kind.key_type) or _has_zoned_timestamp(kind.item_type)
    return False


def _is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def view_sql(name: str, folder: Path) -> str:
    """``create or replace view`` of the Spark table in ``folder`` as ``main.<name>``."""
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(
            f"The Spark table {name} has no Parquet files in {folder}: build the warehouse with "
            "FASHIONREC_WAREHOUSE=spark first (docs/spark.md)"
        )
    schema = pq.read_schema(files[0])
    columns = ", ".join(
        f"{_utc_naive(_quoted(field.name), field.type)} as {_quoted(field.name)}" for field in schema
    )
    location = str(folder / "*.parquet").replace("'", "''")
    return (
        f"create or replace view {DUCKDB_SCHEMA}.{_quoted(name)} as "
        f"select {columns} from read_parquet('{location}')"
    )


def publish(con: duckdb.DuckDBPyConnection, where: Paths, models: list[tuple[str, str]]) -> list[str]:
    """Make each Spark table ``(schema, name)`` of ``models`` the view ``main.<name>`` in ``con``'s DuckDB
    file, replacing a table of that name that an earlier DuckDB build left; in one transaction, so that a
    reader sees all of the Spark build or none of it. Returns the names published."""
    statements = [view_sql(name, where.spark_table(schema, name)) for schema, name in models]
    existing = dict(
        con.execute(
            "select table_name, table_type from information_schema.tables where table_schema = ?",
            [DUCKDB_SCHEMA],
        ).fetchall()
    )
    con.execute("begin transaction")
    try:
        for (_, name), statement in zip(models, statements, strict=True):
            if existing.get(name) == "BASE TABLE":
                con.execute(f"drop table {DUCKDB_SCHEMA}.{_quoted(name)}")
            con.execute(statement)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return [name for _, name in models]
