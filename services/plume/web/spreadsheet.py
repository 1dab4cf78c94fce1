"""CSV that a spreadsheet opens as data: a cell that begins like a formula is neutralised.

Excel, LibreOffice and Google Sheets evaluate a cell that starts with `=`, `+`, `-` or `@`
(and some a tab or carriage return before one) as a formula: a request id `-2-3`, an
organisation named `=HYPERLINK(…)` would run in the reader's spreadsheet. Such a cell is
written with a leading apostrophe, which spreadsheets show as text (OWASP's advice).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The cell's text; prefixed with `'` when it would start a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_line(cells: Iterable[object]) -> str:
    """One CSV row (RFC 4180 quoting, CRLF), every cell neutralised."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow([safe_cell(cell) for cell in cells])
    return buffer.getvalue()
