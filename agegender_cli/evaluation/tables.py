"""The report's tables as plain data (title, header, rows), rendered to Rich by the CLI and to Markdown."""

from __future__ import annotations

from dataclasses import dataclass

from agegender_cli.formatting import METRIC_ROWS, num, pct
from agegender_cli.labels import AGE_CLASSES, GENDERS


@dataclass(frozen=True)
class TableModel:
    """One table: cells are plain text; `emphasis` marks (row, column) cells to stress (a diagonal)."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    emphasis: frozenset[tuple[int, int]] = frozenset()
    note: str = ""


def _with_ci(value: float, ci: tuple[float, float] | None) -> str:
    if ci is None:
        return pct(value)
    low, high = ci
    return f"{pct(value)} ({100 * low:.1f}-{100 * high:.1f})"


def accuracy_table(results: dict, cis: dict | None = None) -> TableModel:
    """Table 5.1: accuracies, AUC, age-class error; 95% intervals where `cis` has them."""

    def ci(arch: str, key: str) -> tuple[float, float] | None:
        return tuple(cis[arch][key]) if cis and arch in cis and key in cis[arch] else None

    archs = list(results)
    rows = [
        ("Gender accuracy", *(_with_ci(results[a]["gender"]["accuracy"], ci(a, "gender")) for a in archs)),
        ("Gender AUC", *(num(results[a]["gender"]["auc"]) for a in archs)),
        ("Age accuracy", *(_with_ci(results[a]["age"]["accuracy"], ci(a, "age")) for a in archs)),
        ("Age one-off accuracy", *(_with_ci(results[a]["age"]["one_off"], ci(a, "one_off")) for a in archs)),
        ("Age macro-F1", *(num(results[a]["age"]["macro_f1"]) for a in archs)),
        ("Age class error mean", *(num(results[a]["age"]["mean_error"]) for a in archs)),
        ("Age class error std", *(num(results[a]["age"]["std_error"]) for a in archs)),
        ("Images", *(str(results[a]["n"]) for a in archs)),
    ]
    return TableModel("Accuracy comparison (Table 5.1)", ("", *archs), tuple(rows))


def gender_table(results: dict) -> TableModel:
    """Table 5.2: precision, recall, F, FNR, FPR per gender."""
    header = ("", *(f"{a} {g}" for a in results for g in GENDERS))
    rows = tuple((label, *(pct(r["gender"]["per_class"][g][key]) for r in results.values() for g in GENDERS))
                 for key, label in METRIC_ROWS)
    return TableModel("Gender metrics per class (Table 5.2)", header, rows)


def age_table(results: dict, arch: str) -> TableModel:
    """Table 5.4: the same metrics per age class, with the support."""
    per_class = results[arch]["age"]["per_class"]
    header = ("class", *(label for _, label in METRIC_ROWS), "n")
    rows = tuple((name, *(pct(per_class[name][key]) for key, _ in METRIC_ROWS), str(per_class[name]["support"]))
                 for name in AGE_CLASSES)
    return TableModel(f"Age metrics per class: {arch} (Table 5.4)", header, rows)


def confusion_table(matrix: list[list[int]], names: list[str], title: str) -> TableModel:
    rows = tuple((name, *map(str, row)) for name, row in zip(names, matrix, strict=True))
    return TableModel(title, ("true \\ pred", *names), rows, frozenset((i, i + 1) for i in range(len(names))))


def mcnemar_table(tests: dict) -> TableModel:
    rows = tuple((pair, task, str(t["b"]), str(t["c"]), num(t["statistic"]), f"{t['p_value']:.3g}", t["method"])
                 for pair, tasks in tests.items() for task, t in tasks.items())
    return TableModel("McNemar's test", ("pair", "task", "b", "c", "statistic", "p-value", "method"), rows,
                      note="b: faces only the first architecture gets right; c: only the second.")


def groups_table(results: dict, group: str) -> TableModel:
    """Gender / age accuracy per race or gender group, and each architecture's largest gap."""
    names = list(next(iter(results.values()))["groups"][group]["metrics"])
    rows = []
    for name in names:
        cells = []
        for r in results.values():
            m = r["groups"][group]["metrics"][name]
            shares = " / ".join(pct(m[key]) for key in ("gender_accuracy", "age_accuracy", "one_off"))
            cells.append(f"{shares} (n={m['n']})")
        rows.append((name, *cells))
    gaps = []
    for arch, r in results.items():
        for metric, gap in r["groups"][group]["largest_gap"].items():
            if gap and gap.get("gap") is not None:
                gaps.append(f"{arch}: largest {metric.split('_')[0]} gap {gap['best_group']} vs "
                            f"{gap['worst_group']}, {100 * gap['gap']:.1f} points")
    title = f"Accuracy per {group} (gender / age / age one-off)"
    return TableModel(title, (group, *results), tuple(rows), note="; ".join(gaps))


def report_tables(results: dict, cis: dict | None = None, confusion: bool = True) -> list[TableModel]:
    """Tables 5.1, 5.2 and 5.4 (and the age confusion matrices) of one or several architectures."""
    tables = [accuracy_table(results, cis), gender_table(results)]
    for arch in results:
        tables.append(age_table(results, arch))
        if confusion:
            tables.append(confusion_table(results[arch]["age"]["confusion"], list(AGE_CLASSES),
                                          f"Age confusion matrix: {arch}"))
    return tables
