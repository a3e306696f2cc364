"""The report's tables as plain data (title, header, rows), rendered to Rich by the CLI and to Markdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agegender_cli.evaluation.result import Gap, ModelResult, PairTests
from agegender_cli.evaluation.table_model import TableModel
from agegender_cli.formatting import METRIC_ROWS, num, pct, with_interval
from agegender_cli.labels import AGE_CLASSES, GENDERS

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


Results = Mapping[str, ModelResult]  # by architecture


def accuracy_table(results: Results) -> TableModel:
    """Table 5.1: accuracies, AUC, age-class error and calibration error, each with its 95% interval where the
    result has one (`ci95`); ECE rows only when the results carry calibration."""
    archs = list(results)
    calibrated = all(results[a].calibration for a in archs)
    rows = []
    for label, task, metric, share in HEADLINE:
        if metric == "ece" and not calibrated:
            continue
        cells = []
        for a in archs:
            ci = results[a].ci95.of(task, metric) if results[a].ci95 else None
            cells.append(with_interval(results[a].headline(task, metric), ci, share=share))
        rows.append((label, *cells))
    rows.append(("Images", *(str(results[a].n) for a in archs)))
    bins = next((r.calibration.gender.n_bins for r in results.values() if r.calibration), None)
    notes = ["Table 5.1 of the report."]
    if any(r.ci95 for r in results.values()):
        notes.append("In brackets: 95% interval (accuracies and one-off: Wilson's score interval; the rest: "
                     "percentile bootstrap, paired resamples of the faces).")
    if bins:
        notes.append(f"ECE: expected calibration error of the top-class probability, {bins} equal-width bins "
                     "(its bootstrap interval leans upward: binning noise adds to the error of a resample).")
    return TableModel("Accuracy, AUC and calibration of each model", ("", *archs), tuple(rows),
                      note=" ".join(notes))


def gender_table(results: Results) -> TableModel:
    """Table 5.2: precision, recall, F, FNR, FPR per gender."""
    header = ("", *(f"{a} {g}" for a in results for g in GENDERS))
    rows = tuple((label, *(pct(getattr(r.gender.per_class[g], key)) for r in results.values() for g in GENDERS))
                 for key, label in METRIC_ROWS)
    return TableModel("Gender: precision, recall and error rates per class", header, rows,
                      note="Table 5.2 of the report.")


def age_table(results: Results, arch: str) -> TableModel:
    """Table 5.4: the same metrics per age class, with the support."""
    per_class = results[arch].age.per_class
    header = ("class", *(label for _, label in METRIC_ROWS), "n")
    rows = tuple((name, *(pct(getattr(per_class[name], key)) for key, _ in METRIC_ROWS), str(per_class[name].support))
                 for name in AGE_CLASSES)
    return TableModel(f"Age classes: precision, recall and error rates of {arch}", header, rows,
                      note="Table 5.4 of the report; n: faces of the class.")


def confusion_table(matrix: Sequence[Sequence[int]], names: list[str], title: str, normalize: bool = False
                    ) -> TableModel:
    """Rows true, columns predicted: counts, or (normalize) each true class's shares, rows summing to 1."""
    from agegender_cli.evaluation.metrics import confusion_shares

    values = [[pct(v, 1) for v in row] for row in confusion_shares(matrix)] if normalize else \
        [[str(v) for v in row] for row in matrix]
    sizes = [sum(row) for row in matrix]
    rows = tuple((f"{name} (n={n})", *row) for name, n, row in zip(names, sizes, values, strict=True))
    title = f"{title} (row-normalised)" if normalize else title
    what = "share of the true class" if normalize else "faces"
    return TableModel(title, ("true \\ pred", *names), rows, frozenset((i, i + 1) for i in range(len(names))),
                      note=f"Rows: true class; columns: predicted class; cells: {what}; diagonal: right.")


def mcnemar_table(tests: Mapping[str, PairTests]) -> TableModel:
    rows = tuple((pair, task, str(t.b), str(t.c), num(t.statistic), f"{t.p_value:.3g}", t.method)
                 for pair, tasks in tests.items() for task, t in (("gender", tasks.gender), ("age", tasks.age)))
    header = ("pair", "task", "b", "c", "statistic", "p-value", "method")
    return TableModel("McNemar's test: do two models err on different faces?", header, rows,
                      note="b: faces only the first architecture gets right; c: only the second.")


def groups_table(results: Results, group: str) -> TableModel:
    """Gender / age / one-off accuracy per race or gender group with 95% intervals and n, then each
    architecture's largest gap (best minus worst group) in that architecture's own columns."""
    first = next(iter(results.values())).groups[group].metrics
    header = (group, "n", *(f"{a} {label}" for a in results for label in GROUP_LABELS))
    rows = []
    for name in first:
        cells = []
        for r in results.values():
            m = r.groups[group].metrics[name]
            cells += [with_interval(getattr(m, key), m.ci95.get(key)) for key in GROUP_KEYS]
        rows.append((name, str(first[name].n), *cells))
    gaps = [r.groups[group].largest_gap for r in results.values()]
    if any(_has_gap(gap) for gaps_of in gaps for gap in gaps_of.values()):
        for label, text in GAP_ROWS:
            rows.append((label, "", *(text(gaps_of[key]) if _has_gap(gaps_of.get(key)) else ""
                                      for gaps_of in gaps for key in GROUP_KEYS)))
    note = ("Largest gap: the best group's accuracy minus the worst's, with its 95% interval; uncertain when "
            "the interval includes 0 or the smaller group is small.")
    if group == "age class":
        note += (" " + CHILDREN_NOTE)
    return TableModel(f"Accuracy per {group} (95% intervals)", header, tuple(rows), note=note)


# measured on UTKFace's test chips (docs/wild.md); the peers measured in issue 26 do no better
CHILDREN_NOTE = ("Children: gender is unreliable below 14 years for both models and their peers (UTKFace test "
                 "chips: 64-65% at 0-2, 74-76% at 4-6, 80-85% at 8-13, against 91-99% for adults); do not rely "
                 "on a child's gender answer.")


GROUP_KEYS = ("gender_accuracy", "age_accuracy", "one_off")
GROUP_LABELS = ("gender", "age", "one-off")


def _has_gap(gap: Gap | None) -> bool:
    return gap is not None and gap.gap is not None


# The gap rows under the group rows: (label, text of one architecture's gap for one metric)
GAP_ROWS = (
    ("largest gap", lambda gap: with_interval(gap.gap, gap.ci95)),
    ("between", lambda gap: f"{gap.best_group} vs {gap.worst_group}"),  # their n: in the n column
    ("trusted", lambda gap: f"no: {gap.doubt}" if gap.doubt else "yes"),
)


def report_tables(results: Results, confusion: bool = True, normalize: bool = False) -> list[TableModel]:
    """Tables 5.1, 5.2 and 5.4 (and the age confusion matrices) of one or several architectures."""
    tables = [accuracy_table(results), gender_table(results)]
    for arch in results:
        tables.append(age_table(results, arch))
        if confusion:
            tables.append(confusion_table(results[arch].age.confusion, list(AGE_CLASSES),
                                          f"Age confusion matrix: {arch}", normalize))
    from agegender_cli.evaluation.years_tables import years_groups_table, years_table

    years = [years_table(results), *(years_groups_table(results, group)
                                     for group in ("per_age_class", "per_race", "per_gender"))]
    return tables + [table for table in years if table is not None]
