"""Warehouse benchmark: generate synthetic logs and `dbt build` them, per preset and engine.

Prints raw rows, seconds, events/s and peak RSS for each step, and the mart row counts. Each step runs in
its own child process, and its peak RSS is that of the child's whole process tree, sampled every 0.2 s
(Spark's work happens in a JVM that pyspark starts beside Python). On Spark the build is followed by the
publishing of its tables as DuckDB views (docs/spark.md), timed apart; the marts are counted through them.

    uv run python bench/warehouse.py --preset demo --preset luggage [--engine duckdb --engine spark]
        [--home DIR] [--keep] [--images]

Images are off by default: the paper-scale goals time the logs and the SQL (`clothing` would draw 1.39M PNGs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fashionrec.settings import WAREHOUSE_ENGINES  # noqa: E402

GENERATE = textwrap.dedent("""
    import json, resource, sys, time
    from pathlib import Path
    from warehouse.generator import generate
    preset, raw_dir, images = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "images"
    start = time.perf_counter()
    result = generate(preset, raw_dir, seed=0, images=images)
    print(json.dumps({"seconds": time.perf_counter() - start, "events": result.n_events,
                      "items": result.n_items, "users": result.n_users,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")

DBT_BUILD = textwrap.dedent("""
    import json, os, resource, sys, time
    from pathlib import Path
    import duckdb
    from dbt.cli.main import dbtRunner
    from fashionrec.settings import DBT_PROJECT_DIR, Paths
    from warehouse import spark_tables
    from warehouse.raw_files import dbt_env
    home, raw_dir, engine = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    os.environ.update(dbt_env(home, raw_dir))
    start = time.perf_counter()
    result = dbtRunner().invoke(["build", "--quiet", "--selector", "warehouse", "--target", engine,
                                 "--project-dir", str(DBT_PROJECT_DIR),
                                 "--profiles-dir", str(DBT_PROJECT_DIR),
                                 "--target-path", str(home / "dbt_target"),
                                 "--log-path", str(home / "dbt_logs")])
    seconds = time.perf_counter() - start
    published = 0.0
    if result.success and engine == "spark":
        start = time.perf_counter()
        artifacts = [json.loads((home / "dbt_target" / f"{name}.json").read_text())
                     for name in ("run_results", "manifest")]
        where = Paths.under(home, raw_dir)
        with duckdb.connect(str(where.duckdb_path)) as con:
            spark_tables.publish_build(con, where, *artifacts)
        published = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "publish_seconds": published, "success": bool(result.success),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")

MARTS = ("items", "sessions", "query_listings", "user_sequences", "splits", "prompt_inputs", "quarantine")


def tree_rss(process) -> int:
    """The resident bytes of ``process`` and all its descendants now (0 for those already gone)."""
    import psutil

    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_child(code: str, *args: str) -> dict:
    """Run ``code`` in a child interpreter; its JSON line, with the peak RSS of its process tree added."""
    import psutil

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", code, *args], cwd=ROOT, stdout=out, stderr=err, text=True
        )
        process, peak = psutil.Process(child.pid), 0
        while child.poll() is None:
            try:
                peak = max(peak, tree_rss(process))
            except psutil.Error:
                pass
            time.sleep(0.2)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        raise SystemExit(f"step failed:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    # the child's own peak (exact) where it reports one, or the tree's sampled one when larger
    result["peak_rss_mb"] = max(result.get("peak_rss_mb", 0.0), peak / 2**20)
    return result


def mart_rows(database: Path) -> dict[str, int]:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        return {name: con.execute(f"select count(*) from {name}").fetchone()[0] for name in MARTS}


def bench_preset(preset: str, home: Path, images: bool, engines: list[str]) -> dict:
    """Generate ``preset``'s logs once, then build them on each engine in a home of its own."""
    from fashionrec.settings import Paths

    raw_dir = home / "raw"
    gen = run_child(GENERATE, preset, str(raw_dir), "images" if images else "no-images")
    builds = {}
    for engine in engines:
        engine_home = home / engine
        build = run_child(DBT_BUILD, str(engine_home), str(raw_dir), engine)
        if not build["success"]:
            raise SystemExit(f"dbt build failed for {preset} on {engine}; logs in {engine_home / 'dbt_logs'}")
        builds[engine] = build | {"marts": mart_rows(Paths.under(engine_home).duckdb_path)}
    return {"preset": preset, "generate": gen, "dbt_build": builds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--preset", action="append", help="preset to run (repeatable); default demo and luggage"
    )
    parser.add_argument(
        "--home", type=Path, help="where to build (default: a temporary directory per preset)"
    )
    parser.add_argument(
        "--engine",
        action="append",
        choices=WAREHOUSE_ENGINES,
        help="dbt target to build on (repeatable); default duckdb",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    parser.add_argument(
        "--images",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also draw one product image per item (off: the logs and dbt alone, as the scale goals mean)",
    )
    args = parser.parse_args()

    for preset in args.preset or ["demo", "luggage"]:
        home = (args.home / preset) if args.home else Path(tempfile.mkdtemp(prefix=f"bench_{preset}_"))
        home.mkdir(parents=True, exist_ok=True)
        try:
            r = bench_preset(preset, home, args.images, args.engine or ["duckdb"])
        finally:
            if not args.keep and not args.home:
                shutil.rmtree(home, ignore_errors=True)
        gen = r["generate"]
        print(f"\n== {preset}: {gen['users']:,} users, {gen['items']:,} items, {gen['events']:,} raw events")
        print(
            f"generate   {gen['seconds']:8.1f} s  {gen['events'] / gen['seconds']:>12,.0f} events/s  "
            f"peak RSS {gen['peak_rss_mb']:,.0f} MB"
        )
        for engine, build in r["dbt_build"].items():
            published = f"  + publish {build['publish_seconds']:.1f} s" if engine == "spark" else ""
            print(
                f"dbt build  {build['seconds']:8.1f} s  {gen['events'] / build['seconds']:>12,.0f} events/s  "
                f"peak RSS {build['peak_rss_mb']:,.0f} MB  ({engine}){published}"
            )
            print("  marts    " + ", ".join(f"{name} {rows:,}" for name, rows in build["marts"].items()))


if __name__ == "__main__":
    main()
