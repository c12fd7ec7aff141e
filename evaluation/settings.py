"""The settings of one evaluation run, and the checks that refuse a run before it reads anything.

The ``evaluation`` asset's config has the same fields, with their descriptions; the whole set is stored
with the run's results in ``eval_runs.config``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from evaluation.llm_methods import check_retrieval_options
from evaluation.methods import DEFAULT_METHODS, GENERATION_METHODS, KNOWN_METHODS
from recommender.generation_settings import DEFAULT_DECODING, check_decoding
from training.baseline_names import parse_run_method

SPLITS = ("test", "valid")


@dataclass(frozen=True)
class EvaluationSettings:
    """What one evaluation run scores, on which targets, and where it loads the models from."""

    k: int = 10  # list length and metric cut-off (paper §5.1: N = 10)
    n: int = 1  # mixup: items taken from the ID list before the title list (paper: 1)
    label: str = ""
    split: str = "test"
    methods: tuple[str, ...] = DEFAULT_METHODS
    preferred_decoding: str = DEFAULT_DECODING  # the headline llm_* decoding; the others get a suffix
    title_encoder: str = ""  # empty: the trained one (artifacts/title_encoder)
    core_dir: str = ""  # empty: artifacts/core
    baselines_dir: str = ""  # empty: artifacts/baselines
    all_targets: bool = False
    adapters: tuple[str, ...] = ()
    baseline_runs: tuple[str, ...] = ()  # <method>-<run_name>
    retrieval_ablations: tuple[str, ...] = ()
    title_vectors_table: str = ""  # empty: item_title_vectors
    method_suffix: str = ""
    control_seed: int = 0  # memory_random's order, drawn per target from (seed, target_id)
    notes: str = ""

    @property
    def uses_llm(self) -> bool:
        """Whether the run scores an LLM method or a control of one, which read the generations."""
        return bool(set(self.methods) & set(GENERATION_METHODS))

    def check(self) -> None:
        """ValueError for a method, retrieval option, split or baseline run the evaluation cannot score."""
        unknown = sorted(set(self.methods) - set(KNOWN_METHODS))
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {list(KNOWN_METHODS)}")
        check_retrieval_options(self.retrieval_ablations, self.method_suffix)
        check_decoding(self.preferred_decoding)
        if self.split not in SPLITS:
            raise ValueError(f"split {self.split!r} cannot be evaluated; use 'test' or 'valid'")
        for name in self.baseline_runs:
            parse_run_method(name)

    def to_json(self) -> str:
        """The settings as stored in ``eval_runs.config`` (keys sorted)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> EvaluationSettings:
        """From a config's values (lists where the settings hold tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
