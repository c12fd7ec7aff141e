"""Warehouse benchmark: generate synthetic logs and `dbt build` them, per preset.

Prints raw rows, seconds, events/s and peak RSS for each step, and the mart row counts. Each step runs in
its own child process so that its peak RSS is its own.

    uv run python bench/warehouse.py --preset demo --preset luggage [--home DIR] [--keep] [--images]

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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

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
    from dbt.cli.main import dbtRunner
    from fashionrec.settings import DBT_PROJECT_DIR
    from warehouse.raw_files import dbt_env
    home, raw_dir = Path(sys.argv[1]), Path(sys.argv[2])
    os.environ.update(dbt_env(home, raw_dir))
    start = time.perf_counter()
    result = dbtRunner().invoke(["build", "--quiet", "--project-dir", str(DBT_PROJECT_DIR),
                                 "--profiles-dir", str(DBT_PROJECT_DIR),
                                 "--target-path", str(home / "dbt_target"),
                                 "--log-path", str(home / "dbt_logs")])
    print(json.dumps({"seconds": time.perf_counter() - start, "success": bool(result.success),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")

MARTS = ("items", "sessions", "query_listings", "user_sequences", "splits", "prompt_inputs", "quarantine")


def run_child(code: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"step failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mart_rows(database: Path) -> dict[str, int]:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        return {name: con.execute(f"select count(*) from {name}").fetchone()[0] for name in MARTS}


def bench_preset(preset: str, home: Path, images: bool) -> dict:
    from fashionrec.settings import Paths

    raw_dir = home / "raw"
    gen = run_child(GENERATE, preset, str(raw_dir), "images" if images else "no-images")
    build = run_child(DBT_BUILD, str(home), str(raw_dir))
    if not build["success"]:
        raise SystemExit(f"dbt build failed for {preset}; logs in {home / 'dbt_logs'}")
    return {
        "preset": preset,
        "generate": gen,
        "dbt_build": build,
        "marts": mart_rows(Paths.under(home).duckdb_path),
    }


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
            r = bench_preset(preset, home, args.images)
        finally:
            if not args.keep and not args.home:
                shutil.rmtree(home, ignore_errors=True)
        gen, build = r["generate"], r["dbt_build"]
        print(f"\n== {preset}: {gen['users']:,} users, {gen['items']:,} items, {gen['events']:,} raw events")
        print(
            f"generate   {gen['seconds']:8.1f} s  {gen['events'] / gen['seconds']:>12,.0f} events/s  "
            f"peak RSS {gen['peak_rss_mb']:,.0f} MB"
        )
        print(
            f"dbt build  {build['seconds']:8.1f} s  {gen['events'] / build['seconds']:>12,.0f} events/s  "
            f"peak RSS {build['peak_rss_mb']:,.0f} MB"
        )
        print("marts      " + ", ".join(f"{name} {rows:,}" for name, rows in r["marts"].items()))


if __name__ == "__main__":
    main()
