"""Result schema 1: docs/outputs.md documents every field of every result object, in order, and nothing else; the
commands print what the dataclasses hold."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agegender_cli.cli.app import app
from agegender_cli.evaluation import result as schema

DOCS = Path(__file__).resolve().parents[1] / "docs" / "outputs.md"
runner = CliRunner()


def _documented() -> dict[str, list[str]]:
    """{object: its fields in the order of its table} from the schema section's '### `Name`' tables."""
    section = DOCS.read_text().split("# Result schema 1", 1)[1]
    objects = {}
    for block in re.split(r"^### ", section, flags=re.M)[1:]:
        name = re.match(r"`(\w+)`", block).group(1)  # type: ignore[union-attr]
        rows = [line for line in block.splitlines() if line.startswith("| `")]
        objects[name] = [re.match(r"\| `(\w+)`", row).group(1) for row in rows]  # type: ignore[union-attr]
    return objects


def _classes() -> dict[str, list[str]]:
    return {name: [f.name for f in dataclasses.fields(kind)] for name, kind in vars(schema).items()
            if isinstance(kind, type) and issubclass(kind, schema.Typed) and kind is not schema.Typed}


def test_the_docs_list_every_field_of_every_result_object_in_order():
    assert _documented() == _classes()


def test_every_object_the_schema_names_is_documented():
    documented = _documented()
    for name, kind in vars(schema).items():
        if isinstance(kind, type) and issubclass(kind, schema.Typed) and kind is not schema.Typed:
            text = DOCS.read_text().split(f"### `{name}`", 1)[1].split("###", 1)[0]
            for field in dataclasses.fields(kind):
                assert f"| `{field.name}` |" in text, (name, field.name)
    assert "Evaluation" in documented and "PredictSummary" in documented


def test_unknown_or_missing_fields_are_refused_by_name():
    with pytest.raises(ValueError, match=r"Roc: unknown field auc"):
        schema.Roc.from_json({"fpr": [0.0], "tpr": [1.0], "auc": 1.0})
    with pytest.raises(ValueError, match=r"McNemar: missing field c"):
        schema.McNemar.from_json({"b": 1, "statistic": 0.0, "p_value": 1.0, "method": "exact binomial"})


def test_evaluate_compare_and_predict_summary_print_one_envelope_that_round_trips(tiny_arch, labelled):
    envelopes = {}
    for command in ("evaluate", "compare"):
        result = runner.invoke(app, [command, "--arch", "tiny", "--images", str(labelled), "--bootstrap", "20",
                                     "--json"])
        assert result.exit_code == 0, result.output
        envelopes[command] = json.loads(result.stdout)
        assert schema.Evaluation.from_json(envelopes[command]).to_json() == envelopes[command]
    assert set(envelopes["evaluate"]) == set(envelopes["compare"]) == set(_classes()["Evaluation"])
    assert envelopes["evaluate"]["results"]["tiny"]["n"] == envelopes["compare"]["results"]["tiny"]["n"] == 16
    lines = runner.invoke(app, ["predict", str(labelled), "--arch", "tiny", "--detector", "none", "--json",
                                "--summary"]).stdout.splitlines()
    records, summary = [json.loads(line) for line in lines[:-1]], json.loads(lines[-1])
    assert len(records) == 16 and all("file" in r for r in records)
    assert {"schema", "command", "results"} <= set(summary) and summary["schema"] == envelopes["compare"]["schema"]
    assert summary["results"]["tiny"]["n"] == summary["coverage"]["faces"] == 16
    assert schema.PredictSummary.from_json(summary).to_json() == summary


def test_evaluate_runs_every_architecture_by_default_as_predict_and_compare_do():
    for command in ("evaluate", "compare", "predict"):
        said = " ".join(runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).stdout.split())
        assert "or both. [default: both]" in said, command
