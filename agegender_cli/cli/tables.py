"""Rich tables laid out like the report's Tables 5.1-5.4, for one or several architectures."""

from __future__ import annotations

from rich.table import Table

from agegender_cli.formatting import METRIC_ROWS, num, pct
from agegender_cli.labels import AGE_CLASSES, GENDERS


def accuracy_table(results: dict, cis: dict | None = None) -> Table:
    table = Table(title="Accuracy comparison (Table 5.1)")
    table.add_column("")
    for arch in results:
        table.add_column(arch, justify="right")
    rows = [
        ("Gender accuracy", lambda r: pct(r["gender"]["accuracy"]), "gender"),
        ("Gender AUC", lambda r: num(r["gender"]["auc"]), None),
        ("Age accuracy", lambda r: pct(r["age"]["accuracy"]), "age"),
        ("Age one-off accuracy", lambda r: pct(r["age"]["one_off"]), None),
        ("Age macro-F1", lambda r: num(r["age"]["macro_f1"]), None),
        ("Age class error mean", lambda r: num(r["age"]["mean_error"]), None),
        ("Age class error std", lambda r: num(r["age"]["std_error"]), None),
        ("Images", lambda r: str(r["n"]), None),
    ]
    for label, cell, ci_key in rows:
        cells = []
        for arch, r in results.items():
            text = cell(r)
            if cis and ci_key and arch in cis:
                low, high = cis[arch][ci_key]
                text += f" [dim]({100 * low:.1f}-{100 * high:.1f})[/]"
            cells.append(text)
        table.add_row(label, *cells)
    return table


def gender_table(results: dict) -> Table:
    table = Table(title="Gender metrics per class (Table 5.2)")
    table.add_column("")
    for arch in results:
        for gender in GENDERS:
            table.add_column(f"{arch} {gender}", justify="right")
    for key, label in METRIC_ROWS:
        table.add_row(label, *(pct(r["gender"]["per_class"][g][key]) for r in results.values() for g in GENDERS))
    return table


def age_table(results: dict, arch: str) -> Table:
    r = results[arch]["age"]
    table = Table(title=f"Age metrics per class: {arch} (Table 5.4)")
    table.add_column("class")
    for _, label in METRIC_ROWS:
        table.add_column(label, justify="right")
    table.add_column("n", justify="right")
    for name in AGE_CLASSES:
        c = r["per_class"][name]
        table.add_row(name, *(pct(c[key]) for key, _ in METRIC_ROWS), str(c["support"]))
    return table


def confusion_table(matrix: list[list[int]], names, title: str) -> Table:
    table = Table(title=title)
    table.add_column("true \\ pred")
    for name in names:
        table.add_column(name, justify="right")
    for name, row in zip(names, matrix, strict=True):
        table.add_row(name, *(f"[bold]{v}[/]" if i == j else str(v)
                              for i, (j, v) in enumerate(zip([names.index(name)] * len(row), row, strict=True))))
    return table


def report_tables(results: dict, cis: dict | None = None, confusion: bool = True) -> list[Table]:
    tables = [accuracy_table(results, cis), gender_table(results)]
    for arch in results:
        tables.append(age_table(results, arch))
        if confusion:
            tables.append(confusion_table(results[arch]["age"]["confusion"], list(AGE_CLASSES),
                                          f"Age confusion matrix: {arch}"))
    return tables
