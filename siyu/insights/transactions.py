"""Read a transaction file for ``siyu clv fit``: CSV (or TSV) with a header, or whitespace-separated
text with or without one.

Columns are named by header name, or all by 0-based index for a file without a header: when every
column given is a number, the file has no header. Dates are ISO (2024-03-01, 20240301, with or
without a time) unless a strptime format is given.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray


class TransactionFileError(ValueError):
    """The file cannot be read as transactions; the message is one line for the user."""


@dataclass(frozen=True)
class Transactions:
    customer_ids: list[str]  # distinct, in order of first appearance
    customer_index: NDArray[np.int64]  # per transaction, into customer_ids
    day: NDArray[np.int64]  # per transaction, proleptic ordinal of the date
    amount: NDArray[np.float64] | None


def _rows(path: Path) -> Iterator[list[str]]:
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise TransactionFileError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        try:
            first = handle.readline()
            handle.seek(0)
            if "," in first or "\t" in first:
                yield from csv.reader(handle, delimiter="," if "," in first else "\t")
            else:
                for line in handle:
                    yield line.split()
        except UnicodeDecodeError as exc:
            raise TransactionFileError(f"{path} is not UTF-8 text") from exc


def _parse_date(value: str, date_format: str | None) -> date:
    if date_format:
        return datetime.strptime(value, date_format).date()  # noqa: DTZ007 (a calendar date)
    return datetime.fromisoformat(value).date()


def read_transactions(
    path: Path,
    *,
    customer_col: str,
    date_col: str,
    amount_col: str | None,
    date_format: str | None,
) -> Transactions:
    wanted = [c for c in (customer_col, date_col, amount_col) if c is not None]
    rows = _rows(path)
    if all(c.isdigit() for c in wanted):
        positions = [int(c) for c in wanted]
        line_offset = 1
    else:
        header = [h.strip() for h in next(rows, [])]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise TransactionFileError(
                f"column {missing[0]!r} not in the header ({', '.join(header) or 'empty file'})"
            )
        positions = [header.index(c) for c in wanted]
        line_offset = 2
    index: dict[str, int] = {}
    customers: list[int] = []
    days: list[int] = []
    amounts: list[float] = []
    width = max(positions) + 1
    for line_no, row in enumerate(rows, start=line_offset):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < width:
            raise TransactionFileError(f"line {line_no}: expected at least {width} columns")
        cells = [row[p].strip() for p in positions]
        try:
            day = _parse_date(cells[1], date_format).toordinal()
        except ValueError:
            raise TransactionFileError(f"line {line_no}: bad date {cells[1]!r}") from None
        if amount_col is not None:
            try:
                amount = float(cells[2])
            except ValueError:
                raise TransactionFileError(f"line {line_no}: bad amount {cells[2]!r}") from None
            if not np.isfinite(amount) or amount < 0:
                raise TransactionFileError(f"line {line_no}: negative or invalid amount {amount}")
            amounts.append(amount)
        customers.append(index.setdefault(cells[0], len(index)))
        days.append(day)
    if not customers:
        raise TransactionFileError(f"{path} holds no transactions")
    return Transactions(
        customer_ids=list(index),
        customer_index=np.asarray(customers, dtype=np.int64),
        day=np.asarray(days, dtype=np.int64),
        amount=np.asarray(amounts) if amount_col is not None else None,
    )
