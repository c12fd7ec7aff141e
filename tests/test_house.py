"""The house rules of docs/architecture.md, checked on the source: imports follow the layer table, no
file-level import cycle, thin assets, short files, and every document the code points to exists.

The layer table is read from docs/architecture.md itself, so the page and the check cannot drift apart.
Imports inside functions count as much as module-level ones: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MAX_ASSET_BODY_LINES = 40  # docstring included
MAX_FILE_LINES = 400
DATA_TABLES = {Path("warehouse/generator/vocabulary.py")}  # the generator's vocabulary: data, not logic
ASSET_DECORATORS = {"asset", "multi_asset", "asset_check", "multi_asset_check", "dbt_assets"}


def layer_rule() -> dict[str, set[str]]:
    """``layer -> layers it may import``, from the table under "## The import rule"."""
    section = ARCHITECTURE.read_text().split("## The import rule", 1)[1].split("\n## ", 1)[0]
    rule: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rule[cells[0].strip("`")] = set(re.findall(r"`([a-z_]+)`", cells[1]))
    return rule


RULE = layer_rule()


def source_files() -> list[Path]:
    return sorted(p.relative_to(ROOT) for layer in RULE for p in (ROOT / layer).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in source_files()}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, project module) for every import in the file, resolved to the longest module that exists."""
    found = []
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target:
                found.append((node.lineno, target))
    return found


GRAPH = {name: {target for _, target in imports_of(path)} - {name} for name, path in MODULES.items()}


def test_the_layer_table_names_every_top_level_package():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert set(RULE) == packages - {"tests"}, "docs/architecture.md's import rule must list every package"
    for layer, allowed in RULE.items():
        assert allowed <= set(RULE) - {layer}, layer


def test_imports_follow_the_layers():
    wrong = sorted(
        {
            f"{path}:{line} imports {target} ({path.parts[0]} may import only {sorted(RULE[path.parts[0]])})"
            for path in MODULES.values()
            for line, target in imports_of(path)
            if (layer := target.split(".")[0]) != path.parts[0] and layer not in RULE[path.parts[0]]
        }
    )
    edges = defaultdict(set)
    for name, targets in GRAPH.items():
        edges[name.split(".")[0]].update(t.split(".")[0] for t in targets)
    print("\nlayer imports (observed):")
    for layer in RULE:
        print(f"  {layer:<12} -> {', '.join(sorted(edges[layer] - {layer})) or '(nothing of the project)'}")
    assert not wrong, "\n".join(wrong)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module (each one an import cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_through_others():
    cycles = strongly_connected(GRAPH)
    imports = sum(map(len, GRAPH.values()))
    print(f"\n{len(MODULES)} modules, {imports} imports between them, {len(cycles)} cycles")
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def asset_bodies() -> list[tuple[str, int]]:
    bodies = []
    for path in (ROOT / "assets").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
                ASSET_DECORATORS & set(re.findall(r"\w+", ast.unparse(d))) for d in node.decorator_list
            ):
                bodies.append((f"assets/{path.name}:{node.name}", node.end_lineno - node.body[0].lineno + 1))
    return bodies


def test_asset_bodies_are_thin():
    bodies = asset_bodies()
    assert len(bodies) >= 10  # the scan finds the assets at all
    long = [f"{name} ({lines} lines)" for name, lines in bodies if lines > MAX_ASSET_BODY_LINES]
    assert not long, f"asset bodies over {MAX_ASSET_BODY_LINES} lines: {long}"


@pytest.mark.parametrize("folder", [*RULE, "bench", "tests"])
def test_no_source_file_is_doing_two_jobs(folder):
    long = [
        f"{path.relative_to(ROOT)} ({n} lines)"
        for path in (ROOT / folder).rglob("*.py")
        if path.relative_to(ROOT) not in DATA_TABLES
        and (n := len(path.read_text().splitlines())) > MAX_FILE_LINES
    ]
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


# a document is named by its path under docs/ or by an upper-case name (README.md); bare lower-case names
# in code are files the pipeline writes (report.md), and links between pages are tests/test_readme.py's
DOCUMENT_REFERENCE = re.compile(r"\b(docs/[\w-]+\.md|[A-Z][\w-]*\.md)\b(?!\()")


def test_every_document_the_code_points_to_exists():
    texts = [path for folder in [*RULE, "bench", "tests"] for path in (ROOT / folder).rglob("*.py")]
    texts += [*(ROOT / "dbt_project").rglob("*.yml"), *(ROOT / "dbt_project").rglob("*.sql")]
    texts += [*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md"), ROOT / "Makefile", ROOT / "pyproject.toml"]
    missing = sorted(
        f"{reference} (in {path.relative_to(ROOT)})"
        for path in texts
        if "target" not in path.relative_to(ROOT).parts
        for reference in DOCUMENT_REFERENCE.findall(path.read_text())
        if not (ROOT / reference).is_file()
    )
    assert not missing, missing


def test_the_generator_knows_every_preset():
    from fashionrec.presets import PRESET_NAMES
    from warehouse.generator.presets import PRESETS

    assert tuple(PRESETS) == PRESET_NAMES
