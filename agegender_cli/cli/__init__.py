"""The command line: the only code that imports typer and rich.

`agegender --help` imports every command module, so they keep it cheap: what a command needs only when it runs
(the service, numpy-backed helpers, rich.progress) is imported inside it, and the modules that declare options
evaluate their annotations when defined (no `from __future__ import annotations`): Typer reads every annotation,
and strings would be compiled by `eval` on each start.
"""
