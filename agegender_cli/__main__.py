"""Entry point for `python -m agegender_cli`."""

from agegender_cli.cli.app import main

main()
