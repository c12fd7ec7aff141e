"""The study files: the paper's experiments written as YAML that a non-Python user can read and edit.

A study (``studies/<name>.yaml``) has a ``description``, ordered ``steps`` and the ``table`` (and, for
a curve, the ``plot``) to print from the evaluation runs its steps made::

    description: Paper §5.4, low-resource setting ...
    requires: {categories: [Footwear]}            # optional: what the warehouse must hold
    steps:
      - name: adapter on 10 % of the training users
        selection: key:lora_adapter              # Dagster asset selection, as `fashionrec run` takes it
        config:                                  # per asset: the fields of its config (see the UI)
          lora_adapter: {adapter: users_10, train_user_fraction: 0.1}
        requires: {env: [SOME_VARIABLE]}         # optional: else the step is skipped, with the reason
    table:
      slices: [all]                              # all | cold_start | warm
      rows:                                      # empty: every method the study's evaluations scored
        - {method: llm_mixup-users_10, label: 10 % of training users, x: 0.1, series: ours}
        - {method: core-users_10, label: 10 % of training users, x: 0.1, series: CORE}
    plot: {title: ..., x_label: share of training users, metrics: [recall@10, ndcg@10]}

Strings in a step's config may name environment variables as ``${NAME}`` (e.g. a local CLIP checkpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from fashionrec.settings import PROJECT_ROOT

STUDIES_DIR = PROJECT_ROOT / "studies"


class StudyError(ValueError):
    """A study that cannot run as written, or a step that failed; the message says which and why."""


class _Strict(BaseModel):
    # a misspelt key in a hand-written file is an error, not a silently ignored setting
    model_config = ConfigDict(extra="forbid")


class Requires(_Strict):
    """What must be there for a study (or a step) to run."""

    env: list[str] = Field(default=[], description="Environment variables that must be set.")
    categories: list[str] = Field(default=[], description="Item categories the warehouse must hold.")
    hint: str = Field(default="", description="What to do when something is missing.")


class StudyStep(_Strict):
    name: str
    selection: str = Field(description="Dagster asset selection, e.g. 'key:lora_adapter'.")
    config: dict[str, dict[str, Any]] = Field(
        default={}, description="Per asset (or op) name, the fields of its config."
    )
    requires: Requires = Requires()


class TableRow(_Strict):
    method: str
    label: str = ""
    categories: list[str] = Field(default=["all"], description="'all' and/or category names.")
    x: float | None = Field(default=None, description="Position on the plot's x axis.")
    series: str = Field(
        default="",
        description="The plot line of the row (e.g. 'CORE': one line per method family, as paper Figure "
        "6); rows without one are drawn one line per category.",
    )
    step: str = Field(default="", description="The step that produces the row; when skipped, says why.")


class StudyTable(_Strict):
    slices: list[Literal["all", "cold_start", "warm"]] = ["all"]
    rows: list[TableRow] = Field(default=[], description="Empty: every method of the study's runs.")


class StudyPlot(_Strict):
    title: str
    x_label: str
    metrics: list[Annotated[str, StringConstraints(pattern=r"^(recall|ndcg|mrr)@\d+$")]] = Field(
        default=["recall@10", "ndcg@10"], min_length=1, description="Panels: recall@K, ndcg@K or mrr@K."
    )


class Study(_Strict):
    description: str
    requires: Requires = Requires()
    steps: list[StudyStep] = Field(min_length=1)
    table: StudyTable = StudyTable()
    plot: StudyPlot | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Study:
        names = [step.name for step in self.steps]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"step names must be unique; repeated: {repeated}")
        unknown = sorted({row.step for row in self.table.rows if row.step and row.step not in names})
        if unknown:
            raise ValueError(f"table rows name unknown step(s) {unknown}; steps are {names}")
        if self.plot is not None and any(row.x is None for row in self.table.rows):
            raise ValueError("a study with a plot needs an `x` on every table row")
        if self.plot is not None and not self.table.rows:
            raise ValueError("a study with a plot needs table rows with their `x`")
        return self


def study_path(name: str) -> Path:
    """The file of a study: ``studies/<name>.yaml``, or ``name`` itself when it is a path to a YAML file."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name).expanduser().resolve()
    else:
        path = STUDIES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(study for study, _ in list_studies()) or "none"
        raise StudyError(f"no study {name!r} ({path} does not exist); studies: {known}")
    return path


def load_study(name: str) -> tuple[str, Path, Study]:
    """The study's name (the file's stem), its file and its validated content."""
    path = study_path(name)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StudyError(f"{path} is not valid YAML: {error}") from error
    try:
        study = Study.model_validate(raw)
    except ValidationError as error:
        problems = "\n".join(
            f"  - {'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in error.errors()
        )
        raise StudyError(f"{path} is not a valid study:\n{problems}") from error
    return path.stem, path, study


def list_studies() -> list[tuple[str, str]]:
    """Every study of ``studies/`` with the first sentence of its description."""
    out = []
    for path in sorted(STUDIES_DIR.glob("*.yaml")):
        try:
            description = str((yaml.safe_load(path.read_text()) or {}).get("description", ""))
        except yaml.YAMLError:
            description = "(not valid YAML)"
        out.append((path.stem, " ".join(description.split()).split(". ")[0]))
    return out
