"""RecBole atomic files: our warehouse written as ``.inter``/``.item``, and any ``.inter`` read back.

Atomic files (RecBole's user guide, "Atomic Files"): tab-separated UTF-8 text whose first line declares
each column as ``name:type``, the type one of ``token``, ``token_seq`` (space-separated tokens),
``float`` or ``float_seq``. :func:`export_warehouse` writes the item events of ``user_sequences``
(clicks, add-to-carts, purchases) as ``<name>.inter`` with ``user_id:token, item_id:token,
timestamp:float`` (``ts`` in seconds since the epoch) and the ``items`` mart as ``<name>.item``, plus a
RecBole config for the protocol of ``evaluation.recbole_protocol``, so that RecBole itself can run on
exactly our file. :func:`read_inter` reads any ``.inter`` file back, the columns in any order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
INTER_COLUMNS = (("user_id", "token"), ("item_id", "token"), ("timestamp", "float"))
# the items-mart columns RecBole can use; first_seen (a date) and attributes (free-form) are left out
ITEM_COLUMNS = {
    "item_id": "token",
    "title": "token_seq",
    **dict.fromkeys(
        ("category", "subcategory", "brand", "color", "size", "season", "holiday", "occasion", "parent_id"),
        "token",
    ),
    "price": "float",
}


class AtomicFileError(ValueError):
    """A malformed atomic file, naming the file, the 1-based line and what was wrong."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(f"{path}, line {line}: {problem}")
        self.path, self.line = path, line


def _cell(value: object) -> str:
    """A text value fit for one cell: tabs and line breaks would split the row, runs of spaces would make
    empty ``token_seq`` tokens, and a leading double quote would open a quoted field in RecBole's pandas
    reader, so whitespace collapses to single spaces and double quotes become single ones."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return " ".join(str(value).replace('"', "'").split())


def write_atomic(path: Path, columns: Sequence[tuple[str, str]], frame: pd.DataFrame) -> Path:
    """``frame``'s ``columns`` (name, atomic type) as an atomic file; ids must survive unchanged."""
    cells = []
    for name, kind in columns:
        if kind == "float":
            cells.append(["" if pd.isna(v) else repr(float(v)) for v in frame[name]])  # repr round-trips
            continue
        text = [_cell(v) for v in frame[name]]
        if name in ("user_id", "item_id"):
            changed = [(v, t) for v, t in zip(frame[name], text, strict=True) if t != v or not t]
            if changed:
                raise ValueError(
                    f"{name} {changed[0][0]!r} cannot be written as a token: ids must be non-empty strings "
                    "without tabs, line breaks, double quotes or repeated spaces"
                )
        cells.append(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(f"{name}:{kind}" for name, kind in columns) + "\n")
        f.writelines("\t".join(row) + "\n" for row in zip(*cells, strict=True))
    return path


def interactions_from_sequences(user_sequences: pd.DataFrame) -> pd.DataFrame:
    """``user_id, item_id, timestamp`` of every ``user_sequences`` event with an item, in seq_no order.

    The timestamp is ``ts`` in seconds since the epoch. Events sharing a ``ts`` keep their ``seq_no``
    order (ts, then event_id) through the file order, which RecBole's stable sort preserves.
    """
    events = user_sequences.loc[user_sequences["item_id"].notna()]
    events = events.sort_values(["user_id", "seq_no"], kind="stable")
    ts = pd.to_datetime(events["ts"], utc=True)
    seconds = (ts - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return pd.DataFrame(
        {
            "user_id": events["user_id"].astype(str),
            "item_id": events["item_id"].astype(str),
            "timestamp": seconds,
        }
    ).reset_index(drop=True)


def recbole_config(data_path: Path) -> str:
    """RecBole settings (``--config_files``) that run ``evaluation.recbole_protocol``'s protocol on the
    exported files. ``load_col`` must name the timestamp (RecBole's default loads user and item only) and
    loads the ``.item`` ids so that the never-bought catalog items are ranked too, as with ``--item``."""
    return f"""# RecBole settings for the LS protocol of `fashionrec baselines`
data_path: {data_path}
USER_ID_FIELD: user_id
ITEM_ID_FIELD: item_id
TIME_FIELD: timestamp
load_col:
  inter: [user_id, item_id, timestamp]
  item: [item_id]
MAX_ITEM_LIST_LENGTH: 50
eval_args:
  split: {{'LS': 'valid_and_test'}}
  order: TO
  group_by: user
  mode: full
metrics: [Recall, NDCG, MRR]
topk: [10]
valid_metric: NDCG@10
train_neg_sample_args: ~
"""


ITEM_ACTIONS = ("click", "add_to_cart", "purchase")  # the user_sequences actions that name an item


def export_warehouse(
    database: Path, data_path: Path, name: str = "fashionrec", actions: Sequence[str] = ITEM_ACTIONS
) -> dict[str, Any]:
    """Write ``data_path/name/name.inter`` and ``.item`` (RecBole's dataset layout) and
    ``data_path/name.yaml`` from the DuckDB warehouse; returns the paths and row counts.

    ``actions`` picks the item events exported: ``("purchase",)`` gives a purchase-only file, the shape of
    a retailer's transaction export (repeat purchases, many test targets never bought in training)."""
    import duckdb

    unknown = sorted(set(actions) - set(ITEM_ACTIONS))
    if unknown or not actions:
        raise ValueError(
            f"actions {unknown or list(actions)} are not item events; choose from {ITEM_ACTIONS}"
        )
    with duckdb.connect(str(database), read_only=True) as con:
        sequences = con.execute(
            "select user_id, seq_no, item_id, ts from user_sequences"
            " where item_id is not null and list_contains(?, action) order by user_id, seq_no",
            [list(actions)],
        ).df()
        items = con.execute("select * from items order by item_id").df()
    folder = data_path / name
    inter = write_atomic(folder / f"{name}.inter", INTER_COLUMNS, interactions_from_sequences(sequences))
    item_columns = [(c, kind) for c, kind in ITEM_COLUMNS.items() if c in items.columns]
    item = write_atomic(folder / f"{name}.item", item_columns, items)
    config = data_path / f"{name}.yaml"
    config.write_text(recbole_config(data_path.resolve()))
    return {
        "inter": inter,
        "item": item,
        "config": config,
        "interactions": len(sequences),
        "items": len(items),
    }


def read_atomic(
    path: Path, required: Sequence[str] = (), nonempty: Sequence[str] = ()
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every column of an atomic file as strings (``float`` columns as floats) and ``{name: type}``.

    Columns may come in any order. A line whose column count differs from the header's, an empty value
    of a ``required`` column (or of a declared ``nonempty`` one) or an unparsable float raises
    :class:`AtomicFileError` with its line number: nothing is dropped silently. Only empty lines are
    skipped (they hold no row; pandas skips them too). No quoting: :func:`write_atomic` never writes a
    field that starts with a double quote.
    """
    with path.open(encoding="utf-8-sig", newline="") as f:
        header = f.readline().rstrip("\r\n")
        types: dict[str, str] = {}
        for column in header.split("\t"):
            name, sep, kind = column.partition(":")
            if not sep or not name or kind not in ATOMIC_TYPES or name in types:
                raise AtomicFileError(
                    path,
                    1,
                    f"header column {column!r} is not a new 'name:type' with type one of {ATOMIC_TYPES}",
                )
            types[name] = kind
        missing = [name for name in required if name not in types]
        if missing:
            raise AtomicFileError(path, 1, f"header lacks {missing}; it declares {list(types)}")
        rows, numbers = [], []
        for number, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            values = line.split("\t")
            if len(values) != len(types):
                raise AtomicFileError(
                    path, number, f"{len(values)} tab-separated values, but the header declares {len(types)}"
                )
            rows.append(values)
            numbers.append(number)
    frame = pd.DataFrame(rows, columns=list(types))
    for name in [*required, *(n for n in nonempty if n in types)]:
        empty = np.flatnonzero(frame[name].to_numpy() == "")
        if len(empty):
            raise AtomicFileError(path, numbers[empty[0]], f"{name} is empty")
    for name, kind in types.items():
        if kind == "float":
            parsed = pd.to_numeric(frame[name].replace("", np.nan), errors="coerce")
            bad = np.flatnonzero(parsed.isna().to_numpy() & (frame[name].to_numpy() != ""))
            if len(bad):
                value = frame[name].iloc[bad[0]]
                raise AtomicFileError(path, numbers[bad[0]], f"{name} {value!r} is not a number")
            frame[name] = parsed.astype(np.float64)
    return frame, types


def read_inter(path: Path) -> pd.DataFrame:
    """``user_id, item_id[, timestamp]`` of an ``.inter`` file in file order; other columns are ignored."""
    frame, types = read_atomic(path, required=("user_id", "item_id"), nonempty=("timestamp",))
    if "timestamp" not in types:
        return frame[["user_id", "item_id"]]
    if types["timestamp"] != "float":
        raise AtomicFileError(path, 1, f"timestamp is declared {types['timestamp']!r}; expected float")
    return frame[["user_id", "item_id", "timestamp"]]


def read_items(path: Path) -> pd.DataFrame:
    """An ``.item`` file: ``item_id`` and whatever else it declares (``title`` as space-joined tokens)."""
    return read_atomic(path, required=("item_id",))[0]
