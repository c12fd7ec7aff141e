"""The LLM stage end to end on a small hand-made warehouse: prompts -> base LM -> QLoRA -> constrained
generation, as Dagster assets writing DuckDB tables."""

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from fashionrec.layout import ArtifactLayout
from recommender.adapter_scoring import ValidRankingScore
from recommender.generation_table import read_prompts_to_answer
from recommender.language_model import read_base_model_pointer

CATEGORIES = {
    "Footwear": ["Sneakers", "Boots", "Sandals"],
    "Clothing": ["Dress", "Blouse", "Jacket"],
}
BRANDS = ["Alvora", "Timeson", "Rubzoo", "Nuvel"]
COLORS = ["Black", "White", "Red", "Blue"]
HISTORY_FIELDS = [
    "seq_no",
    "ts",
    "action",
    "query",
    "item_id",
    "title",
    "category",
    "brand",
    "color",
    "size",
    "season",
    "holiday",
    "occasion",
]


def hand_made_catalog(n_items: int = 48) -> list[dict]:
    rng = random.Random(1)
    items = []
    for n in range(n_items):
        category = list(CATEGORIES)[n % 2]
        kind, brand, color = rng.choice(CATEGORIES[category]), rng.choice(BRANDS), rng.choice(COLORS)
        size = rng.choice(["S", "M", "L"]) if category == "Clothing" else rng.choice(["38", "39", "40"])
        items.append(
            {
                "item_id": f"B0{n:04d}X{n % 7}",
                "title": f"{brand} Women {color} {kind} {size}",
                "category": category,
                "brand": brand,
                "color": color,
                "size": size,
                "season": rng.choice(["Summer", "Winter", "All-season"]),
                "holiday": rng.choice([None, "Christmas"]),
                "occasion": rng.choice(["Casual", "Party, Casual", "Work"]),
            }
        )
    return items


def hand_made_targets(items: list[dict], n_users: int = 10) -> tuple[list[dict], dict[str, list[str]]]:
    """Three purchases per user (train, valid, test), each after a search and a few clicks."""
    rng = random.Random(2)
    start = datetime(2024, 1, 1)
    targets, candidates = [], {}
    for u in range(n_users):
        history: list[dict] = []
        for purchase_no, split in enumerate(["train", "valid", "test"]):
            category = rng.choice(list(CATEGORIES))
            pool = [item for item in items if item["category"] == category]
            query = f"{rng.choice(COLORS).lower()} {rng.choice(CATEGORIES[category]).lower()}"
            history.append({"action": "search", "query": query})
            for item in rng.sample(pool, 3):
                history.append({"action": "click", **item})
            bought = rng.choice(pool)
            numbered = [
                {field: event.get(field) for field in HISTORY_FIELDS}
                | {"seq_no": i + 1, "ts": start + timedelta(hours=i)}
                for i, event in enumerate(history)
            ]
            target_id = f"T{u:02d}{purchase_no}"
            targets.append(
                {
                    "target_id": target_id,
                    "user_id": f"U{u:02d}",
                    "split": split,
                    "category": category,
                    "target_item_id": bought["item_id"],
                    "target_title": bought["title"],
                    "target_ts": start + timedelta(hours=len(history)),
                    "is_cold_item": False,
                    "n_history_events": len(numbered),
                    "history": numbered,
                    "latest_query": query,
                    "latest_query_ts": start + timedelta(hours=len(history) - 4),
                }
            )
            candidates[target_id] = [bought["item_id"], *(i["item_id"] for i in rng.sample(pool, 3))]
            history.append({"action": "purchase", **bought})
    return targets, candidates


def write_warehouse(
    path: Path, items: list[dict], targets: list[dict], candidates: dict[str, list[str]]
) -> None:
    history_type = pa.list_(
        pa.struct(
            [
                ("seq_no", pa.int64()),
                ("ts", pa.timestamp("us")),
                *((f, pa.string()) for f in HISTORY_FIELDS[2:]),
            ]
        )
    )
    prompt_inputs = pa.Table.from_pylist(
        targets,
        schema=pa.schema(
            [
                ("target_id", pa.string()),
                ("user_id", pa.string()),
                ("split", pa.string()),
                ("category", pa.string()),
                ("target_item_id", pa.string()),
                ("target_title", pa.string()),
                ("target_ts", pa.timestamp("us")),
                ("is_cold_item", pa.bool_()),
                ("n_history_events", pa.int64()),
                ("history", history_type),
                ("latest_query", pa.string()),
                ("latest_query_ts", pa.timestamp("us")),
            ]
        ),
    )
    prompt_candidates = pa.table(
        {
            "target_id": list(candidates),
            "candidate_item_ids": pa.array(list(candidates.values()), pa.list_(pa.string())),
            "n_candidates": [len(ids) for ids in candidates.values()],
            "target_in_candidates": [True] * len(candidates),
        }
    )
    catalog = pa.Table.from_pylist(items)
    with duckdb.connect(str(path)) as con:
        for name, table in (
            ("items", catalog),
            ("prompt_inputs", prompt_inputs),
            ("prompt_candidates", prompt_candidates),
        ):
            con.register("frame", table)
            con.execute(f"create or replace table {name} as select * from frame")
            con.unregister("frame")


@pytest.mark.slow
def test_llm_assets_end_to_end(tmp_path: Path):
    import dagster as dg

    from assets.llm import llm_assets
    from assets.resources import PipelineSettings, pipeline_resources

    resources = pipeline_resources(PipelineSettings(home=str(tmp_path), raw_dir=str(tmp_path), preset="tiny"))
    items = hand_made_catalog()
    targets, candidates = hand_made_targets(items)
    write_warehouse(tmp_path / "fashionrec.duckdb", items, targets, candidates)

    result = dg.materialize(
        llm_assets,
        resources=resources,
        run_config={
            "ops": {
                "base_lm": {"config": {"epochs": 2.0}},
                # the ablation variants beside the default's "full" (studies/ablations.yaml renders them)
                "prompts": {"config": {"variants": ["full", "no_attributes", "no_query_memory"]}},
                # the learning rate and steps chosen on valid prompts: 2 x 2 points, each scored on 5
                "lora_adapter": {
                    "config": {
                        "max_train_prompts": 8,
                        "batch_size": 4,
                        "learning_rates": [1e-4, 5e-3],
                        "checkpoints": [0.5, 1.0],
                        "selection_prompts": 5,
                    }
                },
                "generations": {
                    "config": {"max_prompts_per_split": 5, "compare_prompts": 4, "batch_size": 5}
                },
            }
        },
    )
    assert result.success

    with duckdb.connect(str(tmp_path / "fashionrec.duckdb"), read_only=True) as con:
        prompts = con.sql("select * from prompts").df()
        generations = con.sql("select * from generations").df()
    assert len(prompts) == len(targets) * 3
    assert set(prompts["variant"]) == {"full", "no_attributes", "no_query_memory"}
    assert prompts["fits_budget"].all()
    full = prompts[prompts["variant"] == "full"]
    assert full["prompt_text"].str.endswith("### Response:\n").all()
    # a train prompt always shows candidates (its target among them), so its answer names the title first
    assert full["response_text"].str.fullmatch(r"\{<title>.+</title>,<id>\S+</id>\}").all()

    # every output parses and names a catalog item of the target's category
    category_of = {item["item_id"]: item["category"] for item in items}
    # the default ranked_prior run writes its group and the ranked one (the model alone) of the same pass
    assert generations["decoding"].value_counts().to_dict() == {"ranked_prior": 10, "ranked": 10}
    assert set(generations["split"]) == {"valid", "test"}
    fused = generations[generations["decoding"] == "ranked_prior"]
    assert fused["order_prior_weight"].notna().all() and fused["order_prior_weight"].nunique() == 1
    alone = generations[generations["decoding"] == "ranked"]
    assert (alone["order_prior_weight"] == 0.0).all()
    assert generations["constrained"].all() and generations["format_ok"].all()
    assert generations["id_in_catalog"].all()
    assert (generations["item_id"].map(category_of) == generations["category"]).all()
    assert generations["title"].str.len().gt(0).all()

    adapter = tmp_path / "artifacts" / "lora_adapter" / "full"
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (tmp_path / "artifacts" / "base_lm" / "model" / "model.safetensors").is_file()

    metadata = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert metadata["lora_adapter"]["train_prompts_used"].value == 8
    assert metadata["lora_adapter"]["trainable_parameters"].value > 0
    # 8 + 2 x 2 hardest prompts in batches of 4: 3 steps, scored at 2 and 3 for each learning rate
    tuning = json.loads((adapter / "tuning.json").read_text())
    assert [(p["learning_rate"], p["step"]) for p in tuning["points"]] == [
        (1e-4, 2),
        (1e-4, 3),
        (5e-3, 2),
        (5e-3, 3),
    ]
    chosen = tuning["chosen"]
    assert chosen["valid_score"] == max(p["valid_score"] for p in tuning["points"])
    tuned = metadata["lora_adapter"]
    assert (tuned["learning_rate"].value, tuned["optimizer_steps"].value) == (
        chosen["learning_rate"],
        chosen["step"],
    )
    assert tuned["selection_valid_prompts"].value == 5 and "hyperparameter_grid" in tuned
    # the adapter kept is the one that scored so: scored again on the same valid prompts, it scores the same
    with duckdb.connect(str(tmp_path / "fashionrec.duckdb"), read_only=True) as con:
        catalog, valid = read_prompts_to_answer(con, "full", ["valid"])
    base = read_base_model_pointer(ArtifactLayout(tmp_path / "artifacts").base_model_pointer)
    again = ValidRankingScore.sample(base, catalog, valid, 5, seed=0)(adapter)
    assert again == pytest.approx(chosen["valid_score"], abs=1e-9)
    assert metadata["generations"]["format_ok_rate"].value == 1.0
    assert metadata["generations"]["compare_grounded_valid_id_rate"].value == 1.0
    assert metadata["generations"]["compare_free_prompts_per_second"].value > 0
    assert metadata["generations"]["prompts_per_second"].value > 0

    # a second decoding of the same variant sits next to the first instead of replacing it
    again = dg.materialize(
        [asset for asset in llm_assets if asset.key.to_user_string() == "generations"],
        resources=resources,
        run_config={
            "ops": {
                "generations": {
                    "config": {"decoding": "free", "max_prompts_per_split": 2, "compare_prompts": 0}
                }
            }
        },
    )
    assert again.success
    with duckdb.connect(str(tmp_path / "fashionrec.duckdb"), read_only=True) as con:
        counts = dict(con.sql("select decoding, count(*) from generations group by 1").fetchall())
    assert counts == {"ranked_prior": 10, "ranked": 10, "free": 4}
