"""Spreadsheet exports that cannot carry formulas: text written by users (an address, a name, a reason) that
begins like a formula (`=`, `+`, `-`, `@`, a tab or a carriage return) stays text in every XLSX the app writes,
so that opening an export never runs `=HYPERLINK(…)` or the like (CSV/formula injection)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from openpyxl.cell import WriteOnlyCell

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def is_formula_like(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def keep_as_text(cell) -> None:
    """Make a cell whose text looks like a formula a plain string cell (openpyxl would write it as a formula)."""
    if is_formula_like(cell.value):
        cell.data_type = "s"


def text_row(ws, values: Iterable[Any]) -> list[Any]:
    """A row for a write-only sheet: formula-like text becomes a string cell, other values stay as they are."""
    row = []
    for value in values:
        if is_formula_like(value):
            cell = WriteOnlyCell(ws, value=value)
            cell.data_type = "s"
            row.append(cell)
        else:
            row.append(value)
    return row
