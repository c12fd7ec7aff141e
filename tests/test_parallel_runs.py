"""Steps side by side: a connection waits for the warehouse while another process writes it, and
`fashionrec run --parallel 2` runs independent steps at the same time, each in its own process, with the
same tables as a run in one process."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from assets.resources import connect_when_free

# holds a write connection to argv[1] for argv[2] seconds, after writing one row and saying so
HOLD_THE_WAREHOUSE = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("create or replace table held as select 1 as x")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def hold(database: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_WAREHOUSE, str(database), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def test_a_connection_waits_until_the_other_process_closes_the_warehouse(tmp_path: Path):
    database = tmp_path / "warehouse.duckdb"
    holder = hold(database, 1.5)
    started = time.monotonic()
    con = connect_when_free(str(database), {}, wait_seconds=60)
    waited = time.monotonic() - started
    try:
        assert con.execute("select count(*) from held").fetchone() == (1,)  # the other process's write
    finally:
        con.close()
        holder.wait()
    assert waited > 0.3, "the lock was never held against us: the test proves nothing"


def test_a_lock_held_past_the_wait_is_a_clear_error(tmp_path: Path):
    database = tmp_path / "warehouse.duckdb"
    holder = hold(database, 30)
    try:
        with pytest.raises(duckdb.IOException, match="lock.*waited 0 s for the other process"):
            connect_when_free(str(database), {}, wait_seconds=0.3)
    finally:
        holder.kill()
        holder.wait()


def test_parallel_run_overlaps_independent_steps(tiny_pipeline, tmp_path: Path):
    """The query memory and CORE's ID vectors need only the marts: with two processes both start at once,
    and they write the same rows as the in-process run of the session's pipeline."""
    from dagster import DagsterInstance

    home = tmp_path / "home"
    shutil.copytree(tiny_pipeline.home, home, ignore=shutil.ignore_patterns("dagster_home"))
    env = {**os.environ, "FASHIONREC_HOME": str(home), "FASHIONREC_PRESET": "tiny"}
    env.pop("FASHIONREC_RAW_DIR", None)
    env.pop("DAGSTER_HOME", None)
    command = [
        str(Path(sys.executable).parent / "fashionrec"),
        "run",
        "key:query_memory or key:item_id_vectors",
    ]
    done = subprocess.run([*command, "--parallel", "2", "--steps"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

    rows = dict(re.findall(r"materialized (\w+)\s+\(([\d,]+) rows\)", done.stdout))
    for asset in ("query_memory", "prompt_candidates", "item_id_vectors"):
        assert int(rows[asset].replace(",", "")) == tiny_pipeline.summary.row_counts[asset], asset
    assert "checks passed, 0 failed" in done.stdout

    instance = DagsterInstance.from_config(str(home / "dagster_home"))
    (run,) = instance.get_runs(limit=1)
    steps = {s.step_key: s for s in instance.get_run_step_stats(run.run_id)}
    memory, vectors = steps["query_memory"], steps["item_id_vectors"]
    assert memory.start_time < vectors.end_time and vectors.start_time < memory.end_time, (
        "the two steps ran one after the other"
    )
