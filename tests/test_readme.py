"""Every SQL example in the README and the docs runs against the tiny warehouse and returns rows, and the
pages link to files that exist."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# the pages whose ```sql blocks run here; docs/studies.md's need a study run (see STUDY_SQL_BLOCKS)
SQL_PAGES = ("README.md", "docs/evaluation.md", "docs/raw-data.md")
STUDIES_PAGE = "docs/studies.md"


def sql_blocks(page: str) -> list[str]:
    """The ```sql blocks of a page (path relative to the repository root), in order."""
    return re.findall(r"```sql\n(.*?)```", (ROOT / page).read_text(), flags=re.S)


def is_study_sql(sql: str) -> bool:
    """Blocks that read a study's rows; they return rows only after a study ran."""
    return "'study:" in sql


# tests/test_studies.py runs these after a small low_resource study
STUDY_SQL_BLOCKS = [
    sql for page in (*SQL_PAGES, STUDIES_PAGE) for sql in sql_blocks(page) if is_study_sql(sql)
]
SQL_CASES = [
    (page, index, sql)
    for page in SQL_PAGES
    for index, sql in enumerate(sql_blocks(page))
    if not is_study_sql(sql)
]


def test_pages_have_sql_examples():
    assert len([case for case in SQL_CASES if case[0] == "README.md"]) >= 3
    assert len([case for case in SQL_CASES if case[0] == "docs/evaluation.md"]) >= 3
    assert len(STUDY_SQL_BLOCKS) >= 2


@pytest.mark.parametrize(
    ("page", "index", "sql"), SQL_CASES, ids=[f"{page}-sql{index}" for page, index, _ in SQL_CASES]
)
def test_page_sql_runs(tiny_home, page, index, sql):
    with duckdb.connect(str(tiny_home / "fashionrec.duckdb"), read_only=True) as con:
        rows = con.execute(sql).fetchall()
    assert rows, f"{page}, sql block {index}:\n{sql}"


def test_readme_links_every_docs_page():
    readme = README.read_text()
    unlinked = [page.name for page in sorted(DOCS.glob("*.md")) if f"(docs/{page.name}" not in readme]
    assert not unlinked, f"README.md does not link {unlinked}"


@pytest.mark.parametrize("page", ["README.md", *sorted(f"docs/{p.name}" for p in DOCS.glob("*.md"))])
def test_relative_links_resolve(page):
    path = ROOT / page
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    missing = [t for t in targets if "://" not in t and not (path.parent / t).exists()]
    assert not missing, f"{page} links to missing files: {missing}"
