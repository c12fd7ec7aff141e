"""The code location loads, and its assets and checks are grouped as the design card says."""

import json
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey

from assets.definitions import defs
from cli.runs import resolve_selection

MARTS = ["items", "sessions", "query_listings", "user_sequences", "splits", "prompt_inputs"]
# Libraries that only running an asset needs; each costs seconds to import, and every `fashionrec` command
# and `dagster dev` load the code location first.
HEAVY_MODULES = [
    "torch",
    "transformers",
    "peft",
    "bitsandbytes",
    "torchvision",
    "sentence_transformers",
    "open_clip",
    "lancedb",
    "matplotlib",
    "sklearn",
]


def test_definitions_load_and_validate():
    defs.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    for mart in MARTS + ["quarantine"]:
        assert AssetKey(mart) in keys


def test_dbt_models_are_in_the_warehouse_group_and_tests_are_checks():
    graph = defs.resolve_asset_graph()
    for mart in MARTS:
        assert graph.get(AssetKey(mart)).group_name == "warehouse"
    checked = {check.asset_key for check in graph.asset_check_keys}
    assert {AssetKey(m) for m in MARTS} <= checked


def test_selection_syntax_picks_the_warehouse_group():
    keys = resolve_selection("group:warehouse")
    assert AssetKey("prompt_inputs") in keys
    assert all(defs.resolve_asset_graph().get(k).group_name == "warehouse" for k in keys)


def test_loading_the_code_location_imports_no_model_or_vector_library():
    # a fresh interpreter: this test process may have imported them for other tests
    probe = (
        "import assets.definitions, json, sys; "
        f"print(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"loading the code location imports {loaded}; import them where they are used"


def test_a_block_that_fails_still_closes_the_warehouse(tmp_path):
    """A step that raised inside ``get_connection`` must not keep the file open in the process."""
    import duckdb
    import pytest

    from assets.resources import WarehouseDuckDB

    resource = WarehouseDuckDB(database=str(tmp_path / "w.duckdb"))
    with resource.get_connection() as con:
        con.execute("create table t as select 1 as x")
    with pytest.raises(RuntimeError), resource.get_connection() as con:
        kept = con  # noqa: F841 - held as a failed step's traceback holds it
        raise RuntimeError("step failed")
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as reader:
        assert reader.execute("select x from t").fetchone() == (1,)
