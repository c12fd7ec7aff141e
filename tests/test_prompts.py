"""Prompt rendering (paper Figure 3), token-budget fitting, the ablation variants and the prompts table."""

import json

import pytest

from recommender.prompt_table import (
    example_prompt,
    prompts_summary,
    prompts_table,
    sample_rows,
    with_target_among,
)
from recommender.prompts import (
    FIGURE3_TEMPLATE_PATH,
    PromptBudget,
    PromptRenderer,
    first_places,
    history_events,
    product_fields,
    prompt_variant,
    render_response,
    target_response,
    token_counter,
)


def words(text: str) -> int:
    """A stand-in tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def click(n: int, **attributes) -> dict:
    event = {
        "action": "click",
        "item_id": f"I{n:03d}",
        "title": f"Alvora Women Dress {n}",
        "category": "Clothing",
        "brand": "Alvora",
        "color": "Black",
        "size": "M",
        "season": "Summer",
        "holiday": None,
        "occasion": "Party, Casual",
    }
    event.update(attributes)
    return event


def search(query: str) -> dict:
    return {"action": "search", "query": query, "item_id": None}


def renderer(max_sequence_tokens: int = 4096, **kwargs) -> PromptRenderer:
    return PromptRenderer(words, PromptBudget(max_sequence_tokens, response_tokens=64), **kwargs)


def figure3(max_sequence_tokens: int = 4096, **kwargs) -> PromptRenderer:
    """The paper's own wording (Figure 3), products as JSON."""
    return renderer(max_sequence_tokens, template_path=FIGURE3_TEMPLATE_PATH, **kwargs)


def test_prompt_follows_figure_3():
    history = [search("sleeveless blouses for women dressy"), click(41, title="Timeson Black Tunic Tops")]
    prompt = figure3().render(history, ["73818", "6878", "3"]).prompt_text

    assert prompt.startswith("Below is an instruction that describes a task")
    instruction = prompt.split("### Instruction:\n")[1].split("### Input:")[0]
    for requirement in (
        "sequential order",
        "color and size",
        "season",
        "occasion",
        "holiday",
        "Prioritize recommendations from the candidate product ids",
        "{<title>title</title>,<id>id</id>}",
    ):
        assert requirement in instruction
    line = prompt.split("### Input:\n")[1].split("\n")[0]
    assert line.startswith("User search keyword <sleeveless blouses for women dressy>, then click product {")
    assert line.endswith(", Candidate product ids: [73818, 6878, 3].")
    shown = json.loads(line[line.index("{") : line.index("}") + 1])
    assert list(shown) == [
        "id",
        "title",
        "category",
        "brand",
        "color",
        "size",
        "season",
        "holiday",
        "occasion",
    ]
    assert shown["id"] == "I041" and shown["title"] == "Timeson Black Tunic Tops" and shown["holiday"] == ""
    assert prompt.endswith("### Response:\n")


def test_every_item_action_is_worded():
    history = [click(1), {**click(2), "action": "add_to_cart"}, {**click(3), "action": "purchase"}]
    line = figure3().render(history, []).prompt_text.split("### Input:\n")[1]
    assert "User click product {" in line
    assert "then add to cart product {" in line
    assert "then purchase product {" in line
    assert "Candidate product ids: []" in line


def test_no_history_still_renders():
    prompt = figure3().render([], [], "full").prompt_text
    assert "User has no earlier activity, Candidate product ids: []." in prompt


def test_no_attributes_variant_shows_id_and_title_only():
    prompt = figure3().render([click(7)], ["I001"], "no_attributes").prompt_text
    line = prompt.split("### Input:\n")[1]
    assert '{"id": "I007", "title": "Alvora Women Dress 7"}' in line
    assert '"color"' not in line
    assert "Candidate product ids: [I001]" in line


def test_no_query_memory_variant_drops_candidates_and_their_instruction():
    prompt = (
        figure3().render([search("red dress"), click(7)], ["I001", "I002"], "no_query_memory").prompt_text
    )
    assert "Candidate product ids" not in prompt
    assert "Prioritize recommendations" not in prompt
    assert '"color": "Black"' in prompt


def test_unknown_variant_and_action_are_rejected():
    with pytest.raises(ValueError, match="unknown prompt variant 'bogus'"):
        prompt_variant("bogus")
    with pytest.raises(ValueError, match="history event 0 has action 'impression'"):
        history_events([{"action": "impression", "item_id": "I1"}])


def test_budget_drops_oldest_events_but_keeps_latest_search_and_candidates():
    history = (
        [click(n) for n in range(1, 6)] + [search("black party dress")] + [click(n) for n in range(6, 30)]
    )
    candidates = ["C1", "C2", "C3"]
    full = figure3().render(history, candidates)
    budget = full.n_prompt_tokens - 100
    fitted = figure3(budget + 64).render(history, candidates)

    assert fitted.fits_budget and fitted.n_prompt_tokens <= budget
    assert fitted.n_history_events_dropped > 0
    assert fitted.n_history_events_kept + fitted.n_history_events_dropped == len(history)
    text = fitted.prompt_text
    assert "search keyword <black party dress>" in text  # the latest search is older than what is kept
    assert "Candidate product ids: [C1, C2, C3]" in text
    assert '"id": "I029"' in text  # the newest event stays
    assert '"id": "I001"' not in text  # the oldest goes first
    # the fewest events were dropped: keeping one more would exceed the budget
    kept_clicks = [n for n in range(1, 30) if f'"id": "I{n:03d}"' in text]
    assert kept_clicks == list(range(kept_clicks[0], 30))
    one_more = [click(kept_clicks[0] - 1)] + [
        e for e in history if e.get("item_id") in {f"I{n:03d}" for n in kept_clicks}
    ]
    longer = figure3().render([history[5], *one_more], candidates)
    assert longer.n_prompt_tokens > budget


def test_over_budget_prompt_keeps_its_core_and_says_so():
    history = [click(1), click(2), search("boots")]
    fitted = figure3(100).render(history, [f"C{n}" for n in range(20)])
    assert not fitted.fits_budget
    assert fitted.n_history_events_kept == 1 and "search keyword <boots>" in fitted.prompt_text
    assert "C19" in fitted.prompt_text


def test_latest_query_is_restored_when_the_window_lost_it():
    events = history_events([click(1), click(2)], latest_query="linen shirt")
    assert events[0] == {"action": "search", "query": "linen shirt"}
    assert history_events([search("boots"), click(1)], latest_query="boots")[0]["query"] == "boots"


def test_template_file_is_editable(tmp_path):
    template = tmp_path / "mine.jinja"
    template.write_text(
        "Recommend.\n{% for e in events %}{{ e.action }}:"
        "{{ e.query if e.action == 'search' else e.product.id }};{% endfor %}"
        "{% if candidate_item_ids is not none %} cands={{ candidate_item_ids | join('|') }}{% endif %}"
        "\nAnswer:\n"
    )
    prompt = renderer(template_path=template).render([search("boots"), click(3)], ["A", "B"]).prompt_text
    assert prompt == "Recommend.\nsearch:boots;click:I003; cands=A|B\nAnswer:\n"


def test_response_and_product_fields():
    assert render_response("258", "RUBZOO Tank Top") == "{<id>258</id>,<title>RUBZOO Tank Top</title>}"
    assert product_fields({"item_id": 5, "title": None}, with_attributes=False) == {"id": "5", "title": ""}


def test_an_answer_to_a_prompt_with_candidates_names_the_title_first():
    assert target_response("I2", "Tee", ["I1", "I2"]) == "{<title>Tee</title>,<id>I2</id>}"
    assert render_response("I2", "Tee", with_candidates=True) == target_response("I2", "Tee", ["I1"])
    # without candidates the answer is Figure 3's
    assert (
        target_response("I2", "Tee", None) == target_response("I2", "Tee", []) == render_response("I2", "Tee")
    )
    # a repeated id is read at its first place
    assert first_places(["I1", "I2", "I1", "I3"]) == {"I1": 0, "I2": 1, "I3": 3}


def test_token_counter_uses_the_model_tokenizer():
    from training.domain_tokenizer import DomainTokenizerConfig, train_domain_tokenizer

    tokenizer = train_domain_tokenizer(["red dress black boots"] * 20, DomainTokenizerConfig(vocab_size=320))
    count = token_counter(tokenizer)
    assert count("red dress") == len(tokenizer("red dress")["input_ids"]) > 0


def target(
    target_id: str, split: str, history: list[dict], title: str | None = "Alvora Women Dress 9"
) -> dict:
    return {
        "target_id": target_id,
        "user_id": f"U{target_id}",
        "split": split,
        "category": "Clothing",
        "target_item_id": "I009",
        "target_title": title,
        "history": history,
        "latest_query": None,
    }


def test_prompts_table_has_a_row_per_target_and_variant_with_candidates_only_where_shown():
    targets = [
        target("T1", "valid", [search("red dress"), click(1)]),
        target("T2", "train", [click(2)], title=None),
        target("T3", "test", []),
    ]
    candidates = {"T1": ["I001", "I005"], "T2": None}  # T3 has no row in prompt_candidates
    variants = ["full", "no_query_memory", "no_attributes"]
    table = prompts_table(targets, candidates, figure3(), variants)

    rows = table.to_pylist()
    assert [(row["target_id"], row["variant"]) for row in rows] == [
        (t, v) for t in ("T1", "T2", "T3") for v in variants
    ]
    shown = {(row["target_id"], row["variant"]): row["candidate_item_ids"] for row in rows}
    assert shown[("T1", "full")] == shown[("T1", "no_attributes")] == ["I001", "I005"]
    assert shown[("T3", "full")] == []
    # a train target is always among its candidates: T2 had none, so it shows its target alone
    assert shown[("T2", "full")] == ["I009"]
    inserted = {(row["target_id"], row["variant"]): row["target_inserted"] for row in rows}
    assert (
        inserted[("T2", "full")] and not inserted[("T1", "full")] and not inserted[("T2", "no_query_memory")]
    )
    assert {shown[(t, "no_query_memory")] for t in ("T1", "T2", "T3")} == {None}
    by_key = {(row["target_id"], row["variant"]): row for row in rows}
    assert "Candidate product ids: [I001, I005]" in by_key[("T1", "full")]["prompt_text"]
    assert "Candidate product ids" not in by_key[("T1", "no_query_memory")]["prompt_text"]
    # an answer to a prompt with candidates opens with the title; without candidates it is Figure 3's
    assert by_key[("T2", "full")]["response_text"] == "{<title></title>,<id>I009</id>}"
    assert by_key[("T2", "no_query_memory")]["response_text"] == "{<id>I009</id>,<title></title>}"
    assert all(row["fits_budget"] and row["n_history_events_dropped"] == 0 for row in rows)

    with pytest.raises(ValueError, match=r"variants \['bogus'\] invalid"):
        prompts_table(targets, candidates, renderer(), ["full", "bogus"])
    with pytest.raises(ValueError, match=r"variants \[\] invalid"):
        prompts_table(targets, candidates, renderer(), [])


def test_prompts_summary_counts_each_variant_and_split_and_the_example_is_a_train_prompt():
    history = [click(n) for n in range(1, 12)]
    targets = [target("T1", "valid", history), target("T2", "train", history[:2])]
    table = prompts_table(targets, {}, figure3(max_sequence_tokens=200), ["full", "no_attributes"])
    summary = prompts_summary(table)

    assert summary[["variant", "split", "prompts"]].values.tolist() == [
        ["full", "train", 1],
        ["full", "valid", 1],
        ["no_attributes", "train", 1],
        ["no_attributes", "valid", 1],
    ]
    rows = {(row["variant"], row["split"]): row for row in table.to_pylist()}
    assert rows[("full", "valid")]["n_history_events_dropped"] > 0  # 11 attributed clicks exceed 136 words
    full_valid = summary[(summary["variant"] == "full") & (summary["split"] == "valid")].iloc[0]
    assert full_valid["share_trimmed"] == 1.0
    assert full_valid["max_tokens"] == rows[("full", "valid")]["n_prompt_tokens"] <= 136
    assert int(summary["over_budget"].sum()) == 0

    assert (
        example_prompt(table)
        == rows[("full", "train")]["prompt_text"] + rows[("full", "train")]["response_text"]
    )
    assert example_prompt(table.slice(0, 2)).startswith(
        rows[("full", "valid")]["prompt_text"]
    )  # no train row
    assert example_prompt(table.slice(0, 0)) is None


def test_sample_rows_is_seeded_keeps_the_order_and_caps_only_above_the_cap():
    rows = list(range(100))
    sample = sample_rows(rows, 10, seed=3)
    assert len(sample) == 10 and sample == sorted(sample)
    assert sample == sample_rows(rows, 10, seed=3) != sample_rows(rows, 10, seed=4)
    assert sample_rows(rows, None, 3) == rows == sample_rows(rows, 100, 3)
    assert sample_rows(rows, 0, 3) == []


CATALOG = {
    f"I{n:03d}": {**click(n), "title": f"Alvora Women Linen Dress Summer Party Casual Style {n} Long Fit"}
    for n in range(1, 40)
}


def test_compact_prompt_shows_each_candidate_with_its_title_and_attributes():
    history = [search("linen dress"), click(3), {**click(4), "action": "add_to_cart"}]
    prompt = renderer(catalog=CATALOG).render(history, ["I007", "I008", "X999"]).prompt_text
    lines = prompt.splitlines()
    assert "searched: linen dress" in lines
    assert (
        "viewed: Alvora Women Dress 3 | Black | M" in lines
        and "carted: Alvora Women Dress 4 | Black | M" in lines
    )
    candidates = lines[lines.index("### Candidates:") + 1 :]
    # the whole title (the answer copies it), the id right after it, color and size; an id missing from
    # the catalog shows alone
    assert candidates[:3] == [
        "- Alvora Women Linen Dress Summer Party Casual Style 7 Long Fit | I007 | Black | M",
        "- Alvora Women Linen Dress Summer Party Casual Style 8 Long Fit | I008 | Black | M",
        "- X999",
    ]
    assert prompt.endswith("### Response:\n")
    no_attributes = renderer(catalog=CATALOG).render(history, ["I007"], "no_attributes").prompt_text
    assert "- Alvora Women Linen Dress Summer Party Casual Style 7 Long Fit | I007\n" in no_attributes
    assert (
        "Candidates" not in renderer(catalog=CATALOG).render(history, ["I007"], "no_query_memory").prompt_text
    )


def test_compact_prompt_fits_twenty_events_in_the_demo_budget():
    """A real history fits: 20 events and 8 candidates in the demo's 768 tokens (704 for the prompt) of
    the packaged model's tokenizer (words stand in here at about 1.4 tokens each, as on the demo catalog)."""
    history = [
        click(n, title=f"KLAIXPOOX Smocked Cocktail Dress for Women Casual Formal {n}") for n in range(20)
    ]
    prompt = renderer(catalog=CATALOG).render(history, [f"I{n:03d}" for n in range(1, 9)])
    assert prompt.n_history_events_kept == 20 and prompt.n_history_events_dropped == 0
    assert prompt.n_prompt_tokens * 1.4 < 768 - 64


def test_a_missed_train_target_takes_a_seeded_random_place_and_the_list_keeps_its_length():
    candidates = ["C1", "C2", "C3", "C4", "C5", "C6"]
    places = [with_target_among(candidates, "T", f"0:{n}").index("T") for n in range(300)]
    lists = [with_target_among(candidates, "T", f"0:{n}") for n in range(300)]
    assert all(len(chosen) == 6 and chosen.count("T") == 1 for chosen in lists)
    assert all([c for c in chosen if c != "T"] == candidates[:5] for chosen in lists)  # order kept
    counts = [places.count(place) for place in range(6)]
    assert min(counts) > 25  # every place is drawn (300 / 6 = 50 expected)
    assert with_target_among(candidates, "T", "0:7") == with_target_among(candidates, "T", "0:7")
    assert with_target_among([], "T", "x") == ["T"]
