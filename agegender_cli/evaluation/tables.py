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


def _with_ci(value: float | None, ci, *, share: bool = True) -> str:
    """A value with its 95% interval: '87.35% (86.1-88.6)' for shares, '0.976 (0.971-0.980)' otherwise."""
    text = pct(value) if share else num(value)
    if ci is None or value is None:
        return text
    low, high = ci
    return f"{text} ({100 * low:.1f}-{100 * high:.1f})" if share else f"{text} ({low:.3f}-{high:.3f})"


# The headline rows: (label, task, metric, shown as a share)
HEADLINE = (
    ("Gender accuracy", "gender", "accuracy", True),
    ("Gender AUC", "gender", "auc", False),
    ("Gender ECE", "gender", "ece", False),
    ("Age accuracy", "age", "accuracy", True),
    ("Age one-off accuracy", "age", "one_off", True),
    ("Age macro-F1", "age", "macro_f1", False),
    ("Age class error mean", "age", "mean_error", False),
    ("Age class error std", "age", "std_error", False),
    ("Age ECE", "age", "ece", False),
)


def _headline_value(result: dict, task: str, metric: str) -> float | None:
    if metric == "ece":
        return (result.get("calibration") or {}).get(task, {}).get("ece")
    return result[task][metric]


def accuracy_table(results: dict) -> TableModel:
    """Table 5.1: accuracies, AUC, age-class error and calibration error, each with its 95% interval where the
    result has one (`ci95`); ECE rows only when the results carry calibration."""
    archs = list(results)
    calibrated = all("calibration" in results[a] for a in archs)
    rows = []
    for label, task, metric, share in HEADLINE:
        if metric == "ece" and not calibrated:
            continue
        cells = []
        for a in archs:
            ci = (results[a].get("ci95") or {}).get(task, {}).get(metric)
            cells.append(_with_ci(_headline_value(results[a], task, metric), ci, share=share))
        rows.append((label, *cells))
    rows.append(("Images", *(str(results[a]["n"]) for a in archs)))
    bins = next((r["calibration"]["gender"]["n_bins"] for r in results.values() if "calibration" in r), None)
    notes = []
    if any("ci95" in r for r in results.values()):
        notes.append("In brackets: 95% bootstrap interval (percentile, paired resamples of the faces).")
    if bins:
        notes.append(f"ECE: expected calibration error of the top-class probability, {bins} equal-width bins "
                     "(its bootstrap interval leans upward: binning noise adds to the error of a resample).")
    return TableModel("Accuracy comparison (Table 5.1)", ("", *archs), tuple(rows), note=" ".join(notes))


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


def confusion_table(matrix: list[list[int]], names: list[str], title: str, normalize: bool = False) -> TableModel:
    """Rows true, columns predicted: counts, or (normalize) each true class's shares, rows summing to 1."""
    from agegender_cli.evaluation.metrics import confusion_shares

    values = [[f"{v:.2f}" for v in row] for row in confusion_shares(matrix)] if normalize else \
        [[str(v) for v in row] for row in matrix]
    sizes = [sum(row) for row in matrix]
    rows = tuple((f"{name} (n={n})", *row) for name, n, row in zip(names, sizes, values, strict=True))
    title = f"{title} (row-normalised)" if normalize else title
    return TableModel(title, ("true \\ pred", *names), rows, frozenset((i, i + 1) for i in range(len(names))))


def mcnemar_table(tests: dict) -> TableModel:
    rows = tuple((pair, task, str(t["b"]), str(t["c"]), num(t["statistic"]), f"{t['p_value']:.3g}", t["method"])
                 for pair, tasks in tests.items() for task, t in tasks.items() if task != "years")
    return TableModel("McNemar's test", ("pair", "task", "b", "c", "statistic", "p-value", "method"), rows,
                      note="b: faces only the first architecture gets right; c: only the second.")


def groups_table(results: dict, group: str) -> TableModel:
    """Gender / age / one-off accuracy per race or gender group with 95% intervals and n, and each
    architecture's largest gap with its interval, marked uncertain when it cannot be trusted."""
    first = next(iter(results.values()))["groups"][group]["metrics"]
    header = (group, "n", *(f"{a} {label}" for a in results for label in ("gender", "age", "one-off")))
    rows = []
    for name in first:
        cells = []
        for r in results.values():
            m = r["groups"][group]["metrics"][name]
            cells += [_with_ci(m[key], (m.get("ci95") or {}).get(key)) for key in GROUP_KEYS]
        rows.append((name, str(first[name]["n"]), *cells))
    gaps = [gap_text(arch, gap) for arch, r in results.items()
            for gap in r["groups"][group]["largest_gap"].values() if gap and gap.get("gap") is not None]
    title = f"Accuracy per {group} (95% intervals)"
    return TableModel(title, header, tuple(rows), note="; ".join(gaps))


GROUP_KEYS = ("gender_accuracy", "age_accuracy", "one_off")


def gap_text(arch: str, gap: dict) -> str:
    """'facenet: largest gender gap White (n=1200) vs Others (n=7), 12.0 points (-3.1 to 30.2), uncertain
    (n = 7 < 20; interval includes 0)'."""
    ci = gap.get("ci95")
    interval = f" ({100 * ci[0]:.1f} to {100 * ci[1]:.1f})" if ci else ""
    doubt = f", uncertain ({gap['doubt']})" if gap.get("doubt") else ""
    return (f"{arch}: largest {gap['metric'].split('_')[0]} gap {gap['best_group']} (n={gap.get('n_best')}) vs "
            f"{gap['worst_group']} (n={gap.get('n_worst')}), {100 * gap['gap']:.1f} points{interval}{doubt}")


def report_tables(results: dict, confusion: bool = True, normalize: bool = False) -> list[TableModel]:
    """Tables 5.1, 5.2 and 5.4 (and the age confusion matrices) of one or several architectures."""
    tables = [accuracy_table(results), gender_table(results)]
    for arch in results:
        tables.append(age_table(results, arch))
        if confusion:
            tables.append(confusion_table(results[arch]["age"]["confusion"], list(AGE_CLASSES),
                                          f"Age confusion matrix: {arch}", normalize))
    from agegender_cli.evaluation.years_tables import years_groups_table, years_table

    years = [years_table(results), *(years_groups_table(results, group)
                                     for group in ("per_age_class", "per_race", "per_gender"))]
    return tables + [table for table in years if table is not None]
