"""Generated logs reshaped as a purchase-only export: what is kept, what is dropped, determinism."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.conftest import small_tiny_logs
from warehouse.generator import generate, to_purchases_only
from warehouse.generator.export_shapes import item_description

SMALL = small_tiny_logs()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    generate(SMALL, out, seed=0)
    return out


def reshaped_copy(generated: Path, out: Path) -> Path:
    out.mkdir()
    for name in ("events.parquet", "items.parquet", "generation_manifest.json"):
        (out / name).write_bytes((generated / name).read_bytes())
    to_purchases_only(out)
    return out


def test_only_purchases_and_a_thin_catalog_are_left(generated: Path, tmp_path: Path):
    before_events = pq.read_table(generated / "events.parquet")
    out = reshaped_copy(generated, tmp_path / "raw")
    events, items = pq.read_table(out / "events.parquet"), pq.read_table(out / "items.parquet")
    assert events.column_names == ["event_id", "user_id", "session_id", "ts", "action", "item_id"]
    assert set(events.column("action").to_pylist()) == {"purchase"}
    assert events.num_rows == before_events.column("action").to_pylist().count("purchase")
    for dropped in ("season", "holiday", "occasion", "gender", "material", "style"):
        assert dropped not in items.column_names
    assert {"item_id", "title", "category", "brand", "color", "size", "price", "description"} <= set(
        items.column_names
    )
    assert items.num_rows == SMALL.n_items and all(items.column("description").to_pylist())
    manifest = json.loads((out / "generation_manifest.json").read_text())
    assert manifest["export_shape"]["rows"] == {"events": events.num_rows, "items": items.num_rows}
    with pytest.raises(ValueError, match="already purchase-only"):
        to_purchases_only(out)


def test_the_same_generated_logs_give_the_same_files(generated: Path, tmp_path: Path):
    first = reshaped_copy(generated, tmp_path / "a")
    second = reshaped_copy(generated, tmp_path / "b")
    for name in ("events.parquet", "items.parquet", "generation_manifest.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_the_description_says_what_defines_the_item():
    row = {"style": "Classic", "gender": "Women", "subcategory": "Sneakers", "brand": "Nova"}
    row |= {"color": "Red", "material": "Suede", "size": "10"}
    assert item_description(row) == "Classic women's sneakers by Nova in red suede, size 10."
    assert item_description({"subcategory": "Boots", "color": None}) == "Boots."
    assert item_description({}) == "Item."


def test_the_command_writes_a_purchase_only_export(tmp_path: Path):
    out = tmp_path / "raw"
    result = CliRunner().invoke(app, ["generate", "--preset", "tiny", "--out", str(out), "--purchases-only"])
    assert result.exit_code == 0, result.output
    assert "purchase events" in result.output
    assert pq.read_table(out / "events.parquet").column_names[-1] == "item_id"
    with pytest.raises(FileNotFoundError, match="run `fashionrec generate` first"):
        to_purchases_only(tmp_path / "empty")
