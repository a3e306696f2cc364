"""The benchmarks' pure helpers (benchmarks/machine.py and the manifest cut of evaluate_throughput): no model loads."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
from conftest import load_file

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    """A benchmark module by file; its folder on sys.path as when the script runs (they import `machine`)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return load_file(BENCHMARKS / f"{name}.py", f"benchmark_{name}")


machine = _load("machine")

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse2 avx avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: something else
flags\t\t: fpu
"""


def test_cpuinfo_first_processor_model_and_flags():
    model, flags = machine.parse_cpuinfo(CPUINFO)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"} <= flags
    assert "fpu" in flags and "something" not in flags


def test_cpuinfo_without_model_or_flags():
    assert machine.parse_cpuinfo("") == ("unknown", frozenset())
    model, flags = machine.parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd bf16\n")  # ARM
    assert model == "unknown" and flags == {"fp", "asimd", "bf16"}


def test_flags_line_names_every_relevant_flag():
    line = machine.flags_line({"avx2", "amx_tile", "sse2"})
    assert line == "avx2 yes, avx512f no, avx512_vnni no, avx512_bf16 no, amx_bf16 no, amx_tile yes"


def test_ratio_check():
    assert machine.ratio_check(50.0, 100.0) == (0.5, True)
    assert machine.ratio_check(100.0, 100.0)[1]
    assert machine.ratio_check(102.9, 100.0)[1]  # within the noise tolerance
    ratio, ok = machine.ratio_check(160.0, 100.0)  # the old script's impossible 1.6
    assert ratio == pytest.approx(1.6) and not ok
    with pytest.raises(ValueError):
        machine.ratio_check(1.0, 0.0)


def test_report_ratio_prints_fail(capsys):
    assert machine.report_ratio("end to end", 90.0, 100.0)
    assert "PASS" in capsys.readouterr().out
    assert not machine.report_ratio("end to end", 190.0, 100.0)
    assert "FAIL:" in capsys.readouterr().out


def test_alternating_rounds_order_and_seconds():
    calls: list[str] = []
    ticks = iter(range(100))
    seconds = machine.alternating_rounds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3,
                                         clock=lambda: float(next(ticks)))
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert seconds == {"a": [1.0, 1.0, 1.0], "b": [1.0, 1.0, 1.0]}
    with pytest.raises(ValueError):
        machine.alternating_rounds({"a": lambda: None}, 0)


def test_median_of_rounds():
    assert machine.median_rate(100, [2.0, 10.0, 1.0]) == 50.0  # one slow round does not move it
    assert machine.median_rate(100, [1.0, 2.0, 4.0, 3.0]) == 40.0
    assert "50.0 images/s" in machine.rate_line("x", 100, [2.0, 10.0, 1.0])


@pytest.mark.parametrize(("count", "batch", "shapes"), [(1000, 64, [64, 40]), (128, 64, [64]), (40, 64, [40]),
                                                        (64, 64, [64]), (0, 64, [])])
def test_warm_up_at_the_timed_batch_shapes(count, batch, shapes):
    assert machine.batch_shapes(count, batch) == shapes
    warm = machine.warm_count(count, batch)
    assert warm == sum(shapes)
    assert set(machine.batch_shapes(warm, batch)) == set(shapes)  # the warm-up meets every timed shape


def test_limited_manifest_first_rows_of_the_split_with_absolute_paths(tmp_path):
    evaluate_throughput = _load("evaluate_throughput")
    source = tmp_path / "data" / "manifest.csv"
    source.parent.mkdir()
    fields = ["path", "age", "gender", "race", "age_class", "split", "source", "group"]
    with source.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        for i in range(10):
            writer.writerow({"path": f"img/{i}.jpg", "age": 30, "gender": i % 2, "race": 0, "age_class": 4,
                             "split": "test" if i % 3 else "train", "source": "", "group": ""})
    out = tmp_path / "cut.csv"
    assert evaluate_throughput.limited_manifest(source, "test", 4, out) == 4
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [Path(r["path"]).name for r in rows] == ["1.jpg", "2.jpg", "4.jpg", "5.jpg"]
    assert all(Path(r["path"]).is_absolute() and r["split"] == "test" for r in rows)
    assert Path(rows[0]["path"]) == (source.parent / "img" / "1.jpg").resolve()


def test_a_ratio_above_1_on_a_noisy_machine_is_said_to_be_noise(capsys):
    assert machine.report_ratio("end to end", 110.0, 100.0, rounds_spread=0.30)
    assert "noisy machine" in capsys.readouterr().out
    assert not machine.report_ratio("end to end", 110.0, 100.0, rounds_spread=0.02)
    assert "FAIL" in capsys.readouterr().out
    assert machine.spread([1.0, 1.2, 1.1]) == pytest.approx(0.2 / 1.1)
