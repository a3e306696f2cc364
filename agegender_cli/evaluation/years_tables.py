"""Tables of the age-in-years metrics (MAE, median error, CS@5) and of the paired Wilcoxon test."""

from __future__ import annotations

from collections.abc import Mapping

from agegender_cli.evaluation.result import ModelResult, PairTests
from agegender_cli.evaluation.table_model import TableModel
from agegender_cli.formatting import pct, with_interval, years


def _with_interval(value: float | None, ci, share: bool = False) -> str:
    return with_interval(value, ci) if share else years(value, ci)


YEARS_ROWS = (("MAE (years)", "mae", False), ("Median abs. error (years)", "median_ae", False),
              ("CS@5 (within 5 years)", "cs5", True), ("Mean signed error (years)", "bias", False))


def years_table(results: Mapping[str, ModelResult]) -> TableModel | None:
    """MAE, median absolute error, CS@5 and bias of each architecture that estimates years, with intervals."""
    archs = [a for a, r in results.items() if r.years]
    if not archs:
        return None
    rows = []
    for label, key, share in YEARS_ROWS:
        cells = [_with_interval(getattr(results[a].years, key), results[a].years.ci95.get(key), share) for a in archs]
        rows.append((label, *cells))
    rows.append(("Faces with an age", *(str(results[a].years.n) for a in archs)))
    return TableModel("Age in years", ("", *archs), tuple(rows),
                      note="Every scored face with an age in years; ages between the classes only where the data kept "
                           "them (--gaps keep: see the coverage). In brackets: 95% bootstrap interval.")


def years_groups_table(results: Mapping[str, ModelResult], group: str) -> TableModel | None:
    """MAE per age class ("per_age_class"), race ("per_race") or gender ("per_gender"), with n."""
    archs = [a for a, r in results.items() if r.years]
    if not archs:
        return None
    first = getattr(results[archs[0]].years, group)
    header = (group.removeprefix("per_").replace("_", " "), "n",
              *(f"{a} {label}" for a in archs for label in ("MAE", "CS@5")))
    rows = []
    for name in first:
        cells = []
        for a in archs:
            m = getattr(results[a].years, group).get(name)
            cells += ([_with_interval(m.mae, (m.ci95 or {}).get("mae")), pct(m.cs5)] if m
                      else [_with_interval(None, None), pct(None)])
        rows.append((name, str(first[name].n), *cells))
    return TableModel(f"Age in years per {header[0]}", header, tuple(rows))


def wilcoxon_table(tests: Mapping[str, PairTests]) -> TableModel | None:
    """Wilcoxon's signed-rank test on the absolute errors in years, per pair of architectures."""
    rows = tuple((pair, str(t.n_nonzero), years(t.median_difference), f"{t.statistic:.1f}", f"{t.p_value:.3g}",
                  t.method, t.better or "-")
                 for pair, tasks in tests.items() if (t := tasks.years))
    if not rows:
        return None
    return TableModel("Wilcoxon's signed-rank test on the absolute errors in years", (
        "pair", "pairs (non-zero)", "median diff. (years)", "W", "p-value", "method", "better"), rows,
        note="Paired over the same faces; the median difference is the first architecture's error minus the "
             "second's (negative: the first is closer).")
