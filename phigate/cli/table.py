"""Aligned text tables for the listing commands.

Rows are written in chunks so a listing of 100,000 recipients is not held in memory: the
column widths come from the first chunk and only grow, so a later, wider value pushes its
own line out rather than re-aligning what has already been printed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import islice
from typing import TextIO

CHUNK = 1000


def _widths(rows: Sequence[Sequence[str]], widths: list[int]) -> list[int]:
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    return widths


def _line(row: Sequence[str], widths: Sequence[int], right: frozenset[int]) -> str:
    cells = []
    last = len(row) - 1
    for index, (cell, width) in enumerate(zip(row, widths, strict=True)):
        if index in right:
            cells.append(cell.rjust(width))
        elif index == last:
            cells.append(cell)  # the last column is never padded: no trailing blanks
        else:
            cells.append(cell.ljust(width))
    return "  ".join(cells).rstrip()


def write_table(out: TextIO, headers: Sequence[str], rows: Iterable[Sequence[str]], *,
                right: Iterable[int] = ()) -> int:
    """Write ``headers`` and ``rows`` as aligned columns; return the number of rows."""
    aligned_right = frozenset(right)
    iterator = iter(rows)
    widths = [len(header) for header in headers]
    count = 0
    header_written = False
    while chunk := list(islice(iterator, CHUNK)):
        widths = _widths(chunk, widths)
        if not header_written:
            out.write(_line(headers, widths, aligned_right) + "\n")
            header_written = True
        for row in chunk:
            out.write(_line(row, widths, aligned_right) + "\n")
        count += len(chunk)
    if not header_written:
        out.write(_line(headers, widths, aligned_right) + "\n")
    return count
