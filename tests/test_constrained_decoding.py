"""Constrained decoding: every answer has the format and a catalog id, even from an untrained model."""

import math
from dataclasses import replace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from recommender.candidate_ranking import CandidateRanker
from recommender.constrained_decoding import TITLE_SLACK_TOKENS, ResponseGrammar
from recommender.generation import GenerationSettings, Recommender
from recommender.generation_table import GenerationGroup, answer_prompts
from recommender.llm_output import parse_recommendation
from recommender.order_prior import fused_order
from recommender.prompts import render_response
from training.domain_tokenizer import (
    DomainTokenizerConfig,
    round_up_to_width_multiple,
    train_domain_tokenizer,
)

CATALOG = [
    ("B0PASH9SLM", "YEWYFO Dainty Gold Necklace Black 16 Inch", "Accessories & Jewelry"),
    ("B0FLHAEOPM", "YEWYFO Dainty Gold Necklace Black 18 Inch", "Accessories & Jewelry"),
    ("B0CKPJJHE2", "YEWYFO Dainty Gold Necklace Gold 16 Inch", "Accessories & Jewelry"),
    ("41", "Timeson Black Tunic Top Women M", "Clothing"),
    ("4", "Timeson Black Tunic Top Women S", "Clothing"),  # a prefix of another id
    ("418", "RUBZOO Chiffon Tank Top Black M", "Clothing"),
    ("SNK-0007", "Alvora Running Sneakers White 38", "Footwear"),
]


@pytest.fixture(scope="module")
def tokenizer():
    texts = [render_response(item_id, title) for item_id, title, _ in CATALOG] * 5
    texts += [render_response(item_id, title, with_candidates=True) for item_id, title, _ in CATALOG] * 5
    texts += ["User search keyword <black necklace>, then click product"] * 5
    return train_domain_tokenizer(texts, DomainTokenizerConfig(vocab_size=384, min_frequency=1))


@pytest.fixture(scope="module")
def untrained_model(tokenizer):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=round_up_to_width_multiple(len(tokenizer)),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config).eval()


def recommender(model, tokenizer, **settings) -> Recommender:
    return Recommender(
        model,
        tokenizer,
        [c[0] for c in CATALOG],
        [c[2] for c in CATALOG],
        GenerationSettings(**settings),
        item_titles=[c[1] for c in CATALOG],
    )


PROMPTS = [
    "User search keyword <black necklace>, then click product\n### Response:\n",
    "User search keyword <tunic>\n### Response:\n",
    "click product\n### Response:\n",
]


def test_untrained_model_still_answers_in_format_with_catalog_ids(untrained_model, tokenizer):
    run = recommender(untrained_model, tokenizer, batch_size=2).generate(PROMPTS * 2, progress=False)
    ids = {c[0] for c in CATALOG}
    for row in run.rows:
        assert row.format_ok, row.raw_text
        assert row.item_id in ids and row.id_in_catalog
        assert row.title and row.n_new_tokens <= 64
    assert run.format_ok_rate == 1.0 and run.id_in_catalog_rate == 1.0


def test_unconstrained_untrained_model_is_malformed(untrained_model, tokenizer):
    run = recommender(untrained_model, tokenizer).generate(PROMPTS, constrained=False, progress=False)
    assert run.format_ok_rate < 1.0  # the control: without the constraint a random model writes noise


def test_ids_are_restricted_to_the_target_category(untrained_model, tokenizer):
    categories = ["Clothing", "Footwear", "Accessories & Jewelry"]
    run = recommender(untrained_model, tokenizer).generate(PROMPTS, categories, progress=False)
    category_of = {c[0]: c[2] for c in CATALOG}
    assert [category_of[row.item_id] for row in run.rows] == categories
    unrestricted = recommender(untrained_model, tokenizer, restrict_to_category=False)
    assert all(row.id_in_catalog for row in unrestricted.generate(PROMPTS, categories, progress=False).rows)


def test_title_is_closed_when_the_token_budget_runs_out(untrained_model, tokenizer):
    grammar = ResponseGrammar(tokenizer, [c[0] for c in CATALOG])
    tight = max(len(tokenizer(f"{{<id>{c[0]}</id>,<title>")["input_ids"]) for c in CATALOG) + 3
    run = recommender(untrained_model, tokenizer, max_new_tokens=tight).generate(PROMPTS, progress=False)
    assert all(row.format_ok and row.n_new_tokens <= tight for row in run.rows)
    with pytest.raises(ValueError, match="too short for the answer format"):
        grammar.constraint(prompt_length=5, max_new_tokens=tight - 2)


def test_titles_are_closed_after_the_longest_catalog_title(untrained_model, tokenizer):
    """An untrained model rambles to max_new_tokens; given the catalog titles, its title stops after the
    longest of them (plus the slack), and the answer keeps the format."""
    ids, categories, titles = ([c[i] for c in CATALOG] for i in (0, 2, 1))
    grammar = ResponseGrammar(tokenizer, ids, categories, titles)
    longest = max(len(tokenizer(title, add_special_tokens=False)["input_ids"]) for title in titles)
    assert grammar.max_title_tokens == longest + TITLE_SLACK_TOKENS
    free_title = GenerationSettings(max_new_tokens=64, catalog_title=False)
    free = Recommender(untrained_model, tokenizer, ids, categories, free_title)
    capped = Recommender(untrained_model, tokenizer, ids, categories, free_title, item_titles=titles)
    assert max(row.n_new_tokens for row in free.generate(PROMPTS, progress=False).rows) == 64
    head = grammar.trie(None).longest
    for row in capped.generate(PROMPTS, progress=False).rows:
        assert row.format_ok and row.id_in_catalog, row.raw_text
        # the id head, at most max_title_tokens title tokens, the closing tags and end-of-text
        assert row.n_new_tokens <= head + grammar.max_title_tokens + len(grammar.close_ids) + 1 < 64
    with pytest.raises(ValueError, match="1 titles given for 7 item ids"):
        ResponseGrammar(tokenizer, ids, categories, titles[:1])


def test_catalog_title_answers_name_one_real_product(untrained_model, tokenizer):
    """With catalog_title, the title after each id is that id's catalog title, even from an untrained
    model, and a tight budget cuts the title but keeps the format."""
    ids, categories, titles = ([c[i] for c in CATALOG] for i in (0, 2, 1))
    title_of = dict(zip(ids, titles, strict=True))
    settings = GenerationSettings(catalog_title=True)
    grounded = Recommender(untrained_model, tokenizer, ids, categories, settings, item_titles=titles)
    for row in grounded.generate(PROMPTS * 2, progress=False).rows:
        assert row.format_ok and row.id_in_catalog, row.raw_text
        assert row.title == title_of[row.item_id], row.raw_text
    tight = max(len(tokenizer(f"{{<id>{i}</id>,<title>")["input_ids"]) for i in ids) + 4
    cut = Recommender(
        untrained_model,
        tokenizer,
        ids,
        categories,
        replace(settings, max_new_tokens=tight),
        item_titles=titles,
    )
    for row in cut.generate(PROMPTS, progress=False).rows:
        assert row.format_ok and row.n_new_tokens <= tight and title_of[row.item_id].startswith(row.title)
    with pytest.raises(ValueError, match="catalog_title needs the catalog's titles"):
        Recommender(untrained_model, tokenizer, ids, categories, settings)


def test_constraint_walks_the_grammar_token_by_token(tokenizer):
    """Always taking the lowest allowed token spells out a valid answer (short ids prefix longer ones)."""
    grammar = ResponseGrammar(tokenizer, [c[0] for c in CATALOG], [c[2] for c in CATALOG])
    prompt = [tokenizer.eos_token_id] * 4
    for category in ("Clothing", "Footwear", None):
        constraint = grammar.constraint(prompt_length=len(prompt), max_new_tokens=40, categories=[category])
        sequence = list(prompt)
        while True:
            allowed = constraint(0, torch.tensor(sequence))
            allowed = allowed.tolist() if isinstance(allowed, torch.Tensor) else allowed
            choice = min(allowed)
            if choice == tokenizer.eos_token_id:
                break
            sequence.append(choice)
        parsed = parse_recommendation(tokenizer.decode(sequence[len(prompt) :]))
        assert parsed.format_ok and parsed.item_id in {c[0] for c in CATALOG}
        if category:
            assert {c[0]: c[2] for c in CATALOG}[parsed.item_id] == category


def test_title_tokens_never_contain_format_characters(tokenizer):
    grammar = ResponseGrammar(tokenizer, ["41"])
    for token_id in grammar.title_ids(torch.device("cpu"), with_close=False).tolist():
        text = tokenizer.decode([token_id])
        assert not set(text) & set("<>{}\n"), text
    assert tokenizer.eos_token_id not in grammar.title_ids(torch.device("cpu"), with_close=True).tolist()


def test_grammar_rejects_bad_catalogs(tokenizer):
    with pytest.raises(ValueError, match="at least one catalog item id"):
        ResponseGrammar(tokenizer, [])
    with pytest.raises(ValueError, match="2 categories given for 1 item ids"):
        ResponseGrammar(tokenizer, ["41"], ["Clothing", "Footwear"])


def test_ids_can_be_restricted_to_the_prompt_candidates(untrained_model, tokenizer):
    shortlists = [["41", "B0PASH9SLM", "not-in-catalog"], ["SNK-0007"], ["B0CKPJJHE2"]]
    categories = ["Clothing", "Footwear", "Clothing"]  # the third shortlist has no Clothing id
    rec = recommender(untrained_model, tokenizer, restrict_to_candidates=True)
    rows = rec.generate(PROMPTS, categories, shortlists=shortlists, progress=False).rows
    assert rows[0].item_id == "41"  # the only Clothing candidate
    assert rows[1].item_id == "SNK-0007"
    # a shortlisted answer is the candidate's whole answer, title first, and ends there
    assert rows[0].raw_text == "{<title>Timeson Black Tunic Top Women M</title>,<id>41</id>}"
    assert rows[1].raw_text == "{<title>Alvora Running Sneakers White 38</title>,<id>SNK-0007</id>}"
    assert {c[0]: c[2] for c in CATALOG}[rows[2].item_id] == "Clothing"  # falls back to the category
    assert all(row.format_ok for row in rows)
    single = rec.recommend(PROMPTS[0], "Accessories & Jewelry", candidate_item_ids=["B0FLHAEOPM"])
    assert single.item_id == "B0FLHAEOPM"


def test_answered_sample_is_one_row_per_prompt_with_the_run_figures_and_the_free_comparison(
    untrained_model, tokenizer
):
    sample = [
        {
            "target_id": f"T{i}",
            "user_id": f"U{i}",
            "split": split,
            "category": category,
            "prompt_text": PROMPTS[i % 3],
            "target_item_id": target,
            "candidate_item_ids": shortlist,
        }
        for i, (split, category, target, shortlist) in enumerate(
            [
                ("valid", "Footwear", "SNK-0007", ["SNK-0007"]),
                ("valid", "Clothing", "418", None),
                ("test", "Footwear", "SNK-0007", None),
                ("test", "Clothing", "41", ["41"]),
            ]
        )
    ]
    group = GenerationGroup("full", "zs_footwear", "ranked")
    rec = recommender(untrained_model, tokenizer, batch_size=2)
    answered = answer_prompts(rec, sample, group, compare_prompts=3)

    assert list(answered.tables) == [group]  # ranked alone writes its own group only
    rows = answered.tables[group].to_pylist()
    assert [row["target_id"] for row in rows] == ["T0", "T1", "T2", "T3"]
    assert all(
        (row["variant"], row["adapter"], row["decoding"], row["constrained"])
        == ("full", "zs_footwear", "ranked", True)
        for row in rows
    )
    # prompts with candidates are ranked over them; the others fall back to grounded decoding
    assert [row["ranked_item_ids"] for row in rows] == [["SNK-0007"], None, None, ["41"]]
    assert all(row["format_ok"] and row["id_in_catalog"] for row in rows)
    assert [row["is_exact_hit"] for row in rows] == [row["item_id"] == row["target_item_id"] for row in rows]
    assert rows[0]["is_exact_hit"] and rows[2]["is_exact_hit"] and rows[3]["is_exact_hit"]  # one id allowed
    figures = answered.figures
    assert (figures["variant"], figures["adapter"], figures["decoding"]) == ("full", "zs_footwear", "ranked")
    assert figures["format_ok_rate"] == figures["valid_id_rate"] == 1.0
    assert figures["test_exact_id_hit_rate"] == 1.0
    assert figures["valid_exact_id_hit_rate"] == (0.5 if rows[1]["item_id"] != "418" else 1.0)
    assert figures["compare_prompts"] == 3
    assert figures["compare_ranked_format_ok_rate"] == figures["compare_grounded_format_ok_rate"] == 1.0
    assert figures["compare_free_format_ok_rate"] < 1.0  # the untrained model's free text
    assert figures["compare_free_prompts_per_second"] > 0
    assert figures["compare_grounded_prompts_per_second"] > 0
    assert "compare_ranked_prompts_per_second" not in figures  # the run's own speed is prompts_per_second
    assert 0 < len(answered.malformed_free) <= 3
    assert answered.malformed_markdown.startswith("- `")

    alone = answer_prompts(rec, sample[:1], group)
    assert alone.num_rows == 1 and not any(name.startswith("compare_") for name in alone.figures)
    assert set(alone.figures) >= {"valid_exact_id_hit_rate"} and "test_exact_id_hit_rate" not in alone.figures


def test_ranking_scores_each_whole_answer_as_one_full_forward_pass_does(untrained_model, tokenizer):
    titles = {item_id: title for item_id, title, _ in CATALOG}
    ranker = CandidateRanker(untrained_model, tokenizer, titles)
    prompt = PROMPTS[0]
    ids = ["41", "418", "41", "SNK-0007"]  # a repeated id is scored once
    scores = ranker.log_probs(prompt, ["41", "418", "SNK-0007", "not-in-catalog"])
    prompt_ids = tokenizer(prompt)["input_ids"]
    for item_id, score in zip(["41", "418", "SNK-0007", "not-in-catalog"], scores, strict=True):
        answer = render_response(item_id, titles.get(item_id, ""), with_candidates=True)
        head = tokenizer(answer, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = untrained_model(torch.tensor([prompt_ids + head])).logits[0].float()
        steps = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)
        assert score == pytest.approx(float(steps.gather(1, torch.tensor(head)[:, None]).sum()), abs=1e-3)
    ranked = ranker.rank(prompt, ids)
    assert sorted(ranked.item_ids) == ["41", "418", "SNK-0007"]
    assert ranked.log_probs == sorted(ranked.log_probs, reverse=True)
    assert dict(zip(ranked.item_ids, ranked.log_probs, strict=True)) == pytest.approx(
        {"41": scores[0], "418": scores[1], "SNK-0007": scores[2]}
    )


def test_ranked_prior_writes_the_fused_and_the_model_alone_groups_from_one_pass(untrained_model, tokenizer):
    clothing = ["4", "41", "418"]
    sample = [
        {
            "target_id": f"T{i}",
            "user_id": f"U{i}",
            "split": split,
            "category": "Clothing",
            "prompt_text": PROMPTS[i % 3],
            "target_item_id": clothing[0],  # always the first candidate: the order prior is all it takes
            "candidate_item_ids": clothing,
        }
        for i, split in enumerate(["valid", "valid", "valid", "test"])
    ]
    group = GenerationGroup("full", "full", "ranked_prior")
    rec = recommender(untrained_model, tokenizer)
    answered = answer_prompts(rec, sample, group)
    model_alone = replace(group, decoding="ranked")
    assert list(answered.tables) == [group, model_alone] and answered.num_rows == 8
    fused, alone = (answered.tables[key].to_pylist() for key in (group, model_alone))
    weight = float(answered.figures["order_prior_weight"])
    valid_ndcg = answered.figures["order_prior_valid_target_ndcg"]
    assert valid_ndcg[str(weight)] == max(valid_ndcg.values()) == 1.0  # inf always reaches it
    assert answered.figures["order_prior_chosen_on_valid_prompts"] == 3
    for row, own in zip(fused, alone, strict=True):
        assert row["candidate_item_ids"] == own["candidate_item_ids"] == clothing
        assert row["candidate_log_probs"] == own["candidate_log_probs"]
        assert (row["order_prior_weight"], own["order_prior_weight"]) == (weight, 0.0)
        scores = dict(zip(clothing, own["candidate_log_probs"], strict=True))
        assert own["ranked_item_ids"] == sorted(clothing, key=lambda item_id: -scores[item_id])
        assert row["ranked_item_ids"] == fused_order(clothing, own["candidate_log_probs"], weight)
        assert row["item_id"] == row["ranked_item_ids"][0] and own["item_id"] == own["ranked_item_ids"][0]
    assert all(row["ranked_item_ids"][0] == "4" for row in fused[:3])

    fixed = answer_prompts(rec, sample, group, order_prior_weight=math.inf)
    assert all(row["ranked_item_ids"] == clothing for row in fixed.tables[group].to_pylist())
    assert "order_prior_valid_target_ndcg" not in fixed.figures
    with pytest.raises(ValueError, match="valid prompts"):
        answer_prompts(rec, sample[3:], group)  # nothing to choose the weight on


def test_an_infinite_order_prior_answers_in_the_candidates_order_without_scoring_them(
    untrained_model, tokenizer, monkeypatch
):
    """At w = inf no score can change the order, so the model scores nothing (the service's fast path);
    a prompt without candidates is still answered by grounded decoding."""
    rec = recommender(untrained_model, tokenizer, order_prior_weight=math.inf)

    def no_scoring(*args, **kwargs):
        raise AssertionError("the model scored candidates that could not change the order")

    monkeypatch.setattr(rec.ranker, "rank_many", no_scoring)
    shortlists = [["418", "4", "418", "41"], None]
    run = rec.answer(PROMPTS[:2], ["Clothing", "Clothing"], shortlists, "ranked_prior", progress=False)
    assert run.rankings[0].item_ids == ["418", "4", "41"] and run.rows[0].item_id == "418"
    assert all(math.isnan(score) for score in run.rankings[0].log_probs)
    assert run.rankings[1] is None and run.rows[1].format_ok and run.rows[1].id_in_catalog
