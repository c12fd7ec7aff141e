"""QLoRA: the base really is 4-bit NF4, only LoRA trains, the loss covers responses only, the paper's
high-perplexity schedule, an adapter saved as safetensors with the selection it learnt from; and the domain
base model recorded as the base the later stages load."""

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import bitsandbytes as bnb
import pytest
import torch
from peft import get_peft_model
from peft.tuners.lora import LoraLayer
from qlora_steps import TINY_BASE
from safetensors.torch import load_file

from fashionrec.layout import ArtifactLayout
from fashionrec.presets import get_preset
from recommender.language_model import compute_dtype, read_base_model_pointer
from recommender.prompts import render_response
from training.adapter_selection import AdapterSelection
from training.adapter_training import train_adapter
from training.adapter_tuning import TuningPoint, best_point, tune_adapter
from training.base_lm import BaseLMConfig, build_domain_base_lm, pretrain_domain_base_lm, pretraining_config
from training.qlora import (
    QLoRAConfig,
    checkpoint_steps,
    lora_config,
    perplexity_schedule,
    prepare_qlora_model,
    response_perplexities,
    train_qlora,
)
from training.qlora_batches import IGNORE_INDEX, decision_span, tokenize_examples
from training.qlora_config import TuningGrid

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def pairs(n: int) -> tuple[list[str], list[str]]:
    prompts = [
        f"User search keyword <black dress {i}>, then click product\n### Response:\n" for i in range(n)
    ]
    responses = [render_response(f"I{i:03d}", f"Alvora Black Dress Size {i % 4}") for i in range(n)]
    return prompts, responses


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> str:
    prompts, responses = pairs(40)
    out = tmp_path_factory.mktemp("base") / "model"
    build_domain_base_lm(prompts + responses, out, TINY_BASE)
    return str(out)


def test_base_is_4bit_nf4_and_only_lora_trains(base_model):
    config = QLoRAConfig()
    model = get_peft_model(prepare_qlora_model(base_model, config), lora_config(config))

    decoder = model.base_model.model.model
    hidden, intermediate = TINY_BASE.hidden_size, TINY_BASE.intermediate_size
    expected_trainable = 0
    for layer in decoder.layers:
        for name in PROJECTIONS:
            parent = layer.self_attn if name in PROJECTIONS[:4] else layer.mlp
            module = getattr(parent, name)
            assert isinstance(module, LoraLayer), name
            base = module.base_layer
            assert isinstance(base, bnb.nn.Linear4bit), type(base)
            assert isinstance(base.weight, bnb.nn.Params4bit) and base.weight.dtype == torch.uint8
            state = base.weight.quant_state
            assert state.quant_type == "nf4"
            assert state.nested  # double quantisation: the absmax constants are quantised too
            # bf16 where the hardware computes it natively (a GPU, AVX512-BF16), else float32
            assert base.compute_dtype == compute_dtype(torch.device("cpu"))
            assert not base.weight.requires_grad
            assert module.r["default"] == 16 and module.scaling["default"] == 16 / 16
            assert module.lora_dropout["default"].p == 0.05
            expected_trainable += 16 * (base.in_features + base.out_features)
    assert expected_trainable == TINY_BASE.num_hidden_layers * 16 * (
        4 * 2 * hidden + 3 * (hidden + intermediate)
    )

    trainable = {name: p.numel() for name, p in model.named_parameters() if p.requires_grad}
    assert sum(trainable.values()) == expected_trainable
    assert all("lora_A" in name or "lora_B" in name for name in trainable)


def test_labels_cover_the_response_only():
    from training.domain_tokenizer import DomainTokenizerConfig, train_domain_tokenizer

    prompts, responses = pairs(3)
    tokenizer = train_domain_tokenizer(
        prompts + responses, DomainTokenizerConfig(vocab_size=320, min_frequency=1)
    )
    examples, n_truncated = tokenize_examples(tokenizer, prompts, responses, max_sequence_tokens=512)
    assert n_truncated == 0
    for prompt, response, example in zip(prompts, responses, examples, strict=True):
        n_prompt = len(tokenizer(prompt)["input_ids"])
        assert example.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
        assert tokenizer.decode(example.labels[n_prompt:-1]) == response
        assert example.labels[-1] == tokenizer.eos_token_id
        assert example.input_ids[n_prompt:] == example.labels[n_prompt:]

    # an over-long pair loses prompt tokens from the front, never the answer
    n_answer = examples[0].n_response_tokens
    cut, n_truncated = tokenize_examples(
        tokenizer, prompts[:1], responses[:1], max_sequence_tokens=n_answer + 4
    )
    assert n_truncated == 1 and len(cut[0].input_ids) == n_answer + 4
    assert cut[0].n_response_tokens == n_answer
    with pytest.raises(ValueError, match="does not fit max_sequence_tokens"):
        tokenize_examples(tokenizer, prompts[:1], responses[:1], max_sequence_tokens=n_answer)


def test_the_decision_is_the_title_and_id_of_an_answer_to_candidates_else_the_id():
    to_candidates = "{<title>Tee: white</title>,<id>B0X1</id>}"
    assert to_candidates[slice(*decision_span(to_candidates))] == "Tee: white</title>,<id>B0X1"
    plain = "{<id>B0X1</id>,<title>Tee: white</title>}"
    assert plain[slice(*decision_span(plain))] == "B0X1"
    assert decision_span("no answer here") is None


def test_high_perplexity_fifth_is_trained_three_times():
    perplexities = [5.0, 90.0, 3.0, 7.0, 60.0, 2.0, 4.0, 8.0, 6.0, 1.0]
    schedule = perplexity_schedule(perplexities, QLoRAConfig())
    assert schedule.high_perplexity == [1, 4]  # the top 20 %
    assert schedule.threshold == 60.0
    counts = {i: schedule.order.count(i) for i in range(10)}
    assert counts == {i: 3 if i in (1, 4) else 1 for i in range(10)}
    assert schedule.pass_starts == [0, 10, 12]  # one pass over all, then two over the hard ones
    assert sorted(schedule.order[:10]) == list(range(10))


def test_scoring_leaves_4bit_weights_trainable(base_model):
    """bitsandbytes repacks 4-bit weights for a CPU inference kernel that has no backward pass; the
    perplexity pass before training must not trigger it."""
    from recommender.language_model import load_tokenizer

    tokenizer = load_tokenizer(base_model)
    model = prepare_qlora_model(base_model, QLoRAConfig())
    examples, _ = tokenize_examples(tokenizer, *pairs(4), max_sequence_tokens=256)
    perplexities = response_perplexities(model, examples, tokenizer.pad_token_id, batch_size=2)
    assert len(perplexities) == 4 and all(p > 1.0 for p in perplexities)
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            assert not getattr(module.weight.quant_state, "packing_format_for_cpu", False)


def test_train_qlora_saves_a_safetensors_adapter(base_model, tmp_path: Path):
    prompts, responses = pairs(10)
    config = QLoRAConfig(batch_size=4, learning_rate=5e-3)
    result = train_qlora(base_model, prompts, responses, tmp_path / "adapter", config)

    assert result.n_examples == 10 and result.n_high_perplexity == 2
    assert result.n_steps == 4  # 10 + 2 + 2 scheduled examples in batches of 4
    assert result.train_tokens > 0 and result.tokens_per_second > 0
    files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "loss_curve.png",
        "training_summary.json",
    } <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    adapter = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"], adapter["lora_dropout"]) == (16, 16, 0.05)
    weights = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert weights and all("lora_A" in name or "lora_B" in name for name in weights)
    # LoRA B starts at zero: after training it must have moved
    assert any(tensor.abs().sum() > 0 for name, tensor in weights.items() if "lora_B" in name)
    assert result.n_trainable_parameters < result.n_parameters / 5


def test_pretraining_config_takes_the_budget_and_only_the_overrides_that_are_set():
    budget = get_preset("tiny").base_lm
    config = pretraining_config(budget, {"epochs": 0.5, "max_corpus_tokens": None})
    assert config.epochs == 0.5 and config.max_corpus_tokens == budget.max_corpus_tokens
    assert (config.hidden_size, config.vocab_size, config.block_size) == (
        budget.hidden_size,
        budget.vocab_size,
        budget.block_size,
    )
    assert pretraining_config(budget, {}) == BaseLMConfig(**asdict(budget))


def test_domain_base_lm_is_recorded_as_the_base_model_with_its_facts(tmp_path: Path):
    items = [
        {"item_id": f"I{i:03d}", "title": f"Alvora Black Dress {i}", "category": "Clothing", "color": "Black"}
        for i in range(12)
    ]
    layout = ArtifactLayout(tmp_path / "artifacts")
    built = pretrain_domain_base_lm(
        items, ["black dress", "red boots"], layout, TINY_BASE, log=lambda _: None
    )

    assert read_base_model_pointer(layout.base_model_pointer) == str(layout.domain_model)
    assert (layout.domain_model / "model.safetensors").is_file() and built.loss_plot.is_file()
    facts = built.facts()
    assert facts["source"] == "domain" and facts["base_model"] == str(layout.domain_model)
    assert (facts["catalog_items"], facts["distinct_queries"], facts["corpus_documents"]) == (12, 2, 14)
    assert facts["architecture"]["hidden_size"] == TINY_BASE.hidden_size and facts["n_parameters"] > 0


def test_train_adapter_learns_from_its_selection_and_saves_it(base_model, tmp_path: Path):
    prompts, responses = pairs(24)
    rows = [
        {
            "prompt_text": p,
            "response_text": r,
            "user_id": f"u{i}",
            "category": ("Footwear", "Clothing")[i % 2],
        }
        for i, (p, r) in enumerate(zip(prompts, responses, strict=True))
    ]
    selection = AdapterSelection("zs_footwear", "full", ("Footwear",), 0.5)
    config = QLoRAConfig(batch_size=4, max_sequence_tokens=128)
    trained = train_adapter(
        base_model, rows, selection, 8, config, tmp_path / "zs_footwear", log=lambda _: None
    )

    expected = selection.train_prompts(rows, 8, config.seed)
    assert 0 < len(expected) < 8
    facts = trained.facts()
    assert facts["train_prompts_used"] == len(expected) and facts["train_prompts_available"] == 24
    assert facts["train_users_used"] == len({row["user_id"] for row in expected})
    assert (facts["adapter"], facts["train_prompt_cap"], facts["learning_rate"]) == ("zs_footwear", 8, 2e-3)
    saved = AdapterSelection.load(tmp_path / "zs_footwear")
    assert saved == selection and saved.counts == {
        "train_prompts": len(expected),
        "train_users": facts["train_users_used"],
    }


def test_checkpoint_steps_are_shares_of_the_schedule_without_its_end():
    assert checkpoint_steps((0.5, 1.0), 12) == [6]
    assert checkpoint_steps((0.25, 0.5, 0.75), 3) == [1, 2]  # 0.75 * 3 rounds to the end
    assert checkpoint_steps((0.01,), 10) == [1]  # never step 0
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        checkpoint_steps((1.5,), 10)


def test_the_best_valid_score_is_chosen_and_a_tie_goes_to_the_earlier_point():
    points = [TuningPoint(1e-3, 2, 0.2), TuningPoint(1e-3, 4, 0.3), TuningPoint(2e-3, 2, 0.3)]
    assert best_point(points) == points[1]
    assert best_point([TuningPoint(1e-3, 2, float("nan")), points[0]]) == points[0]
    with pytest.raises(ValueError, match="no finite valid score"):
        best_point([TuningPoint(1e-3, 2, float("nan"))])
    with pytest.raises(ValueError, match="repeat"):
        TuningGrid((1e-3, 1e-3))
    with pytest.raises(ValueError, match="needs valid prompts"):
        grid = TuningGrid((1e-3, 2e-3))
        tune_adapter("base", [], AdapterSelection("full", "full"), None, QLoRAConfig(), grid, Path("-"), None)


def test_tuning_keeps_the_adapter_the_valid_score_chose_and_records_the_grid(base_model, tmp_path: Path):
    prompts, responses = pairs(16)
    rows = [
        {"prompt_text": p, "response_text": r, "user_id": f"u{i}", "category": "Clothing"}
        for i, (p, r) in enumerate(zip(prompts, responses, strict=True))
    ]
    scored: dict[Path, bytes] = {}

    def score(adapter_dir: Path) -> float:
        """A stand-in for the valid ranking that can tell the saved adapters apart: a hash of the
        weights file, so the test knows which file each score belongs to."""
        weights = (adapter_dir / "adapter_model.safetensors").read_bytes()
        scored[adapter_dir] = weights
        return score_of(weights)

    grid = TuningGrid((1e-3, 5e-3), checkpoints=(0.5, 1.0))
    config = QLoRAConfig(batch_size=4, max_sequence_tokens=128)
    out = tmp_path / "lora_adapter" / "full"
    tuned = tune_adapter(
        base_model, rows, AdapterSelection("full", "full"), None, config, grid, out, score, log=lambda _: None
    )

    # 16 + 2 x 3 hardest examples in batches of 4: 6 steps, scored at 3 and 6 for each learning rate
    assert [(p.learning_rate, p.step) for p in tuned.points] == [(1e-3, 3), (1e-3, 6), (5e-3, 3), (5e-3, 6)]
    assert len(set(scored.values())) == 4  # four different adapters were scored
    best = max(tuned.points, key=lambda p: p.valid_score)
    assert tuned.chosen == best
    kept = (out / "adapter_model.safetensors").read_bytes()
    assert kept == next(w for w in scored.values() if score_of(w) == best.valid_score)
    assert AdapterSelection.load(out) == AdapterSelection("full", "full")
    assert not (out / "checkpoints").exists() and not out.with_name("full.tuning").exists()
    record = json.loads((out / "tuning.json").read_text())
    assert record["chosen"] == {
        "learning_rate": best.learning_rate,
        "step": best.step,
        "valid_score": best.valid_score,
    }
    assert len(record["points"]) == 4
    facts = tuned.facts()
    assert (facts["learning_rate"], facts["optimizer_steps"]) == (best.learning_rate, best.step)
    assert facts["optimizer_steps_scheduled"] == 6 and "**" in tuned.table_markdown()


def score_of(weights: bytes) -> float:
    return int.from_bytes(hashlib.sha256(weights).digest()[:4], "big") / 2**32
