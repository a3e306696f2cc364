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
    setup.add_row("cpu", f"{result['cpu']}: {result['cpu_flags']}")
    setup.add_row("device", f"{result['device']} ({result['device_reason']})")
    setup.add_row("engine", f"{result['engine']} ({result['engine_reason']})")
    setup.add_row("precision", f"{result['precision']} ({result['precision_reason']})")
    setup.add_row("PyTorch precision", result["torch_precision"])
    threads = result["threads"]
    setup.add_row("threads", f"torch {threads['torch']}, opencv {threads['opencv']}, "
                             f"OMP_NUM_THREADS {threads['OMP_NUM_THREADS'] or 'unset'}")
    fused = result.get("fusion") or {}
    if "weights" in fused:
        where = fused.get("fitted_on") or {}
        shares = ", ".join(f"{task} {w:.2f}" for task, w in fused["weights"].items())
        setup.add_row("fused", f"facenet's share: {shares} (fitted on the {where.get('split', '?')} split of "
                               f"{where.get('manifest', '?')}, {where.get('faces', 0):,} faces)")
    elif fused:
        setup.add_row("fused", fused["error"])
    for name, arch in result.get("architectures", {}).items():
        own = ", ".join(arch["capabilities"] + arch["weight_options"] + arch["train_options"]) or "nothing more"
        setup.add_row(f"--arch {name}", f"{arch['summary']}; {own}")
    cache = result["cache"]
    setup.add_row("cache", f"{cache['path']} ({cache['from']}{'' if cache['exists'] else '; not created yet'})")
    files = Table(title="Weights (bundled: in the package; cache: under the cache folder)")
    files.add_column("where")
    files.add_column("file")
    files.add_column("bytes", justify="right")
    files.add_column("sha256", overflow="fold")
    for record in result["weights"]:
        files.add_row(record["where"], record["name"], f"{record['bytes']:,}", record["sha256"])
    return [setup, *engine_tables(result), files]


def engine_tables(result: dict) -> list[Table]:
    """auto's choice for each amount of work, with the estimates it compared, and the calibration they came from."""
    choices = Table(title="--engine auto: the fastest engine here for the work (estimated seconds, start-up included)")
    paths = sorted({path for choice in result["engine_by_work"] for path in choice["estimated_s"]})
    choices.add_column("faces", justify="right")
    choices.add_column("engine")
    choices.add_column("precision")
    for path in paths:
        choices.add_column(path, justify="right")
    for choice in result["engine_by_work"]:
        estimates = choice["estimated_s"]
        choices.add_row(f"{choice['faces']:,}", choice["engine"], choice["precision"],
                        *(f"{estimates[p]:.2f}" if p in estimates else "-" for p in paths))
    calibration = result.get("calibration")
    if not calibration:
        return [choices]
    measured = Table(title=f"Calibration of this CPU ({calibration['measured_s']:.1f} s; {calibration['path']})")
    for column in ("path", "ms a face (both models)", "first batch, ms"):
        measured.add_column(column, justify="left" if column == "path" else "right")
    for path, per_face in calibration["per_face_ms"].items():
        measured.add_row(path, f"{per_face:.1f}", f"{calibration['first_call_ms'].get(path, 0):.0f}")
    measured.caption = (f"PyTorch's import {calibration['torch_import_s']:.2f} s + facenet-pytorch's "
                        f"{calibration['torch_build_s']:.2f} s; {calibration['threads']} threads; {calibration['cpu']}")
    return [choices, measured]
