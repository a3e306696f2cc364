"""The Markdown comparison report, regenerated from the metrics (no hand-written numbers)."""

from __future__ import annotations

import os
from pathlib import Path

from agegender_cli.formatting import METRIC_ROWS, num, pct
from agegender_cli.labels import AGE_CLASSES, GENDERS


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _ci(r: dict, task: str) -> str:
    low, high = r["ci95"][task]
    return f"{pct(r[task]['accuracy'])} ({100 * low:.1f}-{100 * high:.1f})"


def markdown_report(results: dict, mcnemar: dict, source: str, figures: list[str], base: Path) -> str:
    archs = list(results)
    out = ["# Gender and age classification: architectures compared", "",
           f"Images: `{source}`, {next(iter(results.values()))['n']} faces. "
           "Accuracies with bootstrap 95% confidence intervals.", ""]
    out += ["## Accuracy comparison", "", _table([""] + archs, [
        ["Gender accuracy"] + [_ci(results[a], "gender") for a in archs],
        ["Gender AUC"] + [num(results[a]["gender"]["auc"]) for a in archs],
        ["Age accuracy"] + [_ci(results[a], "age") for a in archs],
        ["Age one-off accuracy"] + [pct(results[a]["age"]["one_off"]) for a in archs],
        ["Age macro-F1"] + [num(results[a]["age"]["macro_f1"]) for a in archs],
        ["Age class error, mean"] + [num(results[a]["age"]["mean_error"]) for a in archs],
        ["Age class error, std"] + [num(results[a]["age"]["std_error"]) for a in archs],
    ]), ""]
    out += ["## Gender metrics per class", "", _table(
        [""] + [f"{a} {g}" for a in archs for g in GENDERS],
        [[label] + [pct(results[a]["gender"]["per_class"][g][key]) for a in archs for g in GENDERS]
         for key, label in METRIC_ROWS]), ""]
    for a in archs:
        out += [f"## Age metrics per class: {a}", "", _table(
            ["class"] + [label for _, label in METRIC_ROWS] + ["n"],
            [[c] + [pct(results[a]["age"]["per_class"][c][key]) for key, _ in METRIC_ROWS]
             + [str(results[a]["age"]["per_class"][c]["support"])] for c in AGE_CLASSES]), ""]
    if mcnemar:
        out += ["## McNemar's test", "", _table(["pair", "task", "b", "c", "statistic", "p-value", "method"], [
            [pair, task, str(t["b"]), str(t["c"]), num(t["statistic"]), f"{t['p_value']:.3g}", t["method"]]
            for pair, tasks in mcnemar.items() for task, t in tasks.items()]), "",
            "b: faces only the first architecture gets right; c: only the second.", ""]
    out += ["## Per group", ""]
    for a in archs:
        for group, data in results[a]["groups"].items():
            rows = [[name, str(m["n"]), pct(m["gender_accuracy"]), pct(m["age_accuracy"]), pct(m["one_off"])]
                    for name, m in data["metrics"].items()]
            out += [f"### {a}, per {group}", "", _table([group, "n", "gender acc.", "age acc.", "one-off"], rows), ""]
            for metric, gap in data["largest_gap"].items():
                if gap and gap.get("gap") is not None:
                    out.append(f"- largest {metric.replace('_', ' ')} gap: {gap['best_group']} vs "
                               f"{gap['worst_group']}, {100 * gap['gap']:.1f} points")
            out.append("")
    if figures:
        out += ["## Figures", ""]
        out += [f"![{Path(f).stem}]({os.path.relpath(f, base)})" for f in figures]
        out.append("")
    return "\n".join(out)
