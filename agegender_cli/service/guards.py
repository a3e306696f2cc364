"""What no command may do to the user's files: replace an input; and the outputs renamed to avoid it."""

from __future__ import annotations

from pathlib import Path

from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import display
from agegender_cli.progress import Reporter


def renamed_outputs(names, reporter: Reporter) -> list[dict]:
    """The outputs OutputNames gave another name, each said on the way: the JSON's `renamed`."""
    for wanted, given in names.renamed:
        reporter.message(f"{given}: renamed, {wanted} would have replaced an input, an earlier output or a file "
                         "agegender did not write")
    return [{"from": wanted, "to": given} for wanted, given in names.renamed]


def refuse_overwriting_inputs(outputs: dict[str, Path | str | None], inputs) -> None:
    """A one-line error when an output option names one of the inputs (it would be replaced)."""
    from agegender_cli.fileio import same_file

    for option, target in outputs.items():
        if target is None or str(target) == "-":
            continue
        for source in inputs:
            if same_file(target, source):
                raise AgeGenderError(f"{option} {display(target)} is one of the inputs; writing it would replace "
                                     "that file: choose another name")
