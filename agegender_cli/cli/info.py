"""`agegender info`: versions, device and precision, threads, the cache folder and the weights present."""

from rich.table import Table

from agegender_cli.cli import options as o
from agegender_cli.cli.common import fail_cleanly, print_json, show_table, stdout


@fail_cleanly
def info(as_json: o.Json = False) -> None:
    """Versions, the device and precision a run would use (and why), threads, the cache folder, and the
    weights present with their sha256."""
    from agegender_cli import service

    result = service.info()
    if as_json:
        print_json(result)
    elif show_table():
        for table in info_tables(result):
            stdout.print(table)


def info_tables(result: dict) -> list[Table]:
    setup = Table(title="agegender", show_header=False)
    setup.add_column("item")
    setup.add_column("value")
    for name, value in result["versions"].items():
        setup.add_row(name, value or "[dim]not installed[/]")
    setup.add_section()
    setup.add_row("device", f"{result['device']} ({result['device_reason']})")
    setup.add_row("precision", f"{result['precision']} ({result['precision_reason']})")
    setup.add_row("engine", f"{result['engine']} ({result['engine_reason']})")
    threads = result["threads"]
    setup.add_row("threads", f"torch {threads['torch']}, opencv {threads['opencv']}, "
                             f"OMP_NUM_THREADS {threads['OMP_NUM_THREADS'] or 'unset'}")
    cache = result["cache"]
    setup.add_row("cache", f"{cache['path']} ({cache['from']}{'' if cache['exists'] else '; not created yet'})")
    files = Table(title="Weights (bundled: in the package; cache: under the cache folder)")
    files.add_column("where")
    files.add_column("file")
    files.add_column("bytes", justify="right")
    files.add_column("sha256", overflow="fold")
    for record in result["weights"]:
        files.add_row(record["where"], record["name"], f"{record['bytes']:,}", record["sha256"])
    return [setup, files]
