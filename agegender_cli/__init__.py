"""agegender: gender and age-group classification of faces, two architectures compared."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["AgeGender", "AgeGenderError", "__version__"]

if TYPE_CHECKING:
    from agegender_cli.api import AgeGender
    from agegender_cli.errors import AgeGenderError


def __getattr__(name: str):
    # imported on first use: `agegender --help` must not pay for numpy, torch or cv2
    if name == "AgeGender":
        from agegender_cli.api import AgeGender

        return AgeGender
    if name == "AgeGenderError":
        from agegender_cli.errors import AgeGenderError

        return AgeGenderError
    raise AttributeError(f"module 'agegender_cli' has no attribute {name!r}")
