"""Plain, JSON-ready values: what events, summaries and the live routes carry."""

from __future__ import annotations

import math
from typing import Any


def finite_or_none(value: Any) -> Any:
    """A number, or None where it is NaN or ±inf (JSON has neither); lists and dicts
    element by element. NumPy scalars become Python numbers on the way."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
