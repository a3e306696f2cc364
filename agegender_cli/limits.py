"""The resource limits in force: config's defaults, raised or lowered by environment variables."""

from __future__ import annotations

import math
import os
from dataclasses import fields, replace

from agegender_cli.config import LIMIT_ENV, Limits
from agegender_cli.errors import AgeGenderError


def current_limits() -> Limits:
    """Limits with every AGEGENDER_* override of LIMIT_ENV applied; a bad value is a one-line error."""
    overrides: dict[str, float | int] = {}
    for field in fields(Limits):
        name = LIMIT_ENV[field.name]
        raw = os.environ.get(name)
        if raw is None or raw.strip() == "":
            continue
        kind = int if field.type in ("int", int) else float
        try:
            value = kind(raw.strip().replace("_", ""))
        except ValueError:
            raise AgeGenderError(f"{name}={raw!r} is not a number; unset it or give a positive value") from None
        if not (math.isfinite(value) and value > 0):
            raise AgeGenderError(f"{name}={raw!r} must be a positive number")
        overrides[field.name] = value
    return replace(Limits(), **overrides)


def raise_hint(field: str) -> str:
    """How a user raises one limit, for error messages."""
    return f"raise it with {LIMIT_ENV[field]}=N"
