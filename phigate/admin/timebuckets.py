"""Age and time buckets computed by the database (a CASE over bind parameters).

Grouping in SQL keeps the work next to the data: the admin screens ask for a few dozen counts,
not for 100,000 timestamps.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case


def age_bucket(column: Any, now: datetime, edges: Sequence[timedelta]) -> ColumnElement[int]:
    """0 for ages below ``edges[0]``, 1 below ``edges[1]``, ..., ``len(edges)`` beyond."""
    whens = [(column > now - edge, index) for index, edge in enumerate(edges)]
    return case(*whens, else_=len(edges))


def recent_bucket(column: Any, now: datetime, width: timedelta, count: int) -> ColumnElement[int]:
    """Bucket of a timestamp in the last ``count * width``: 0 is the oldest, count-1 the newest.

    Callers restrict the column to that window; anything older lands in bucket 0.
    """
    whens = [(column > now - width * k, count - k) for k in range(1, count)]
    return case(*whens, else_=0)
