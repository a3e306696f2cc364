"""The one domain exception: a failure the user can act on, shown as one line."""


class AgeGenderError(Exception):
    """A failure explained in one line (exit code 1)."""
