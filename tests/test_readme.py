"""Every SQL example in the README runs against the tiny warehouse and returns rows."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
ALL_SQL_BLOCKS = re.findall(r"```sql\n(.*?)```", README.read_text(), flags=re.S)
# blocks that read a study's rows need a study run: tests/test_studies.py runs them after one
STUDY_SQL_BLOCKS = [sql for sql in ALL_SQL_BLOCKS if "'study:" in sql]
SQL_BLOCKS = [sql for sql in ALL_SQL_BLOCKS if sql not in STUDY_SQL_BLOCKS]


def test_readme_has_sql_examples():
    assert len(SQL_BLOCKS) >= 3


@pytest.mark.parametrize("sql", SQL_BLOCKS, ids=[f"sql{i}" for i in range(len(SQL_BLOCKS))])
def test_readme_sql_runs(tiny_home, sql):
    with duckdb.connect(str(tiny_home / "fashionrec.duckdb"), read_only=True) as con:
        rows = con.execute(sql).fetchall()
    assert rows, sql
