"""The code location loads, and its assets and checks are grouped as the design card says."""

from dagster import AssetKey

from assets.definitions import defs
from fashionrec.pipeline import resolve_selection

MARTS = ["items", "sessions", "query_listings", "user_sequences", "splits", "prompt_inputs"]


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
