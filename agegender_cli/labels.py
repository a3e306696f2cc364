"""Class names of the two tasks and the age-to-class mapping of the report."""

from __future__ import annotations

from numbers import Integral
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

GENDERS: tuple[str, ...] = ("male", "female")

# (low, high) inclusive; the last class is open-ended.
AGE_RANGES: tuple[tuple[int, int], ...] = (
    (0, 2), (4, 6), (8, 13), (15, 20), (25, 32), (38, 43), (48, 53), (60, 200),
)
AGE_CLASSES: tuple[str, ...] = ("0-2", "4-6", "8-13", "15-20", "25-32", "38-43", "48-53", "60+")
RACES: tuple[str, ...] = ("White", "Black", "Asian", "Indian", "Others")

MAX_YEARS = 100  # age in years: the last bin of a years output holds 100 and above
N_BINS = MAX_YEARS + 1

UNKNOWN = "unknown"  # a face without a race or gender: its own table row, never in a gap


def race_name(race: object) -> str:
    """UTKFace's race index 0-4 as RACES names it, a dataset's own group name as is, None or a negative index as
    unknown; an index beyond RACES is a ValueError."""
    if isinstance(race, Integral) and not isinstance(race, bool):  # Integral: numpy's integers too
        if race >= len(RACES):
            raise ValueError(f"race {race} is not an index 0-{len(RACES) - 1}, a group name or None")
        return RACES[race] if race >= 0 else UNKNOWN
    return UNKNOWN if race is None else str(race)


GAP_RULE = (
    "an age between two ranges goes to the range whose nearest edge is closer; "
    "a tie goes to the older range"
)


def age_to_class(age: int, gaps: str = "drop") -> int | None:
    """Age class index of `age`; None for an age in a gap when gaps == 'drop'."""
    if age < 0:
        return None
    for index, (low, high) in enumerate(AGE_RANGES):
        if low <= age <= high:
            return index
    if gaps == "drop":
        return None
    # age lies strictly between AGE_RANGES[i].high and AGE_RANGES[i + 1].low
    for index in range(len(AGE_RANGES) - 1):
        upper_edge, next_low = AGE_RANGES[index][1], AGE_RANGES[index + 1][0]
        if upper_edge < age < next_low:
            return index if age - upper_edge < next_low - age else index + 1
    return None


def expected_years(probabilities: np.ndarray) -> np.ndarray:
    """(N, 101) probabilities over 0..100 years -> (N,) expected age, one decimal."""
    import numpy as np  # this module is read at start-up, before any command needs numpy

    years = probabilities.astype(np.float64) @ np.arange(N_BINS, dtype=np.float64)
    return np.round(years, 1).astype(np.float32)
