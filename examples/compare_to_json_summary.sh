#!/usr/bin/env bash
# Compare every architecture on a split (default: test) and print a one-line summary per architecture.
# Usage: examples/compare_to_json_summary.sh [MANIFEST [SPLIT]]
set -euo pipefail
manifest=${1:-data/utkface/manifest.csv}
summary=$(cat <<'PY'
import json, sys
result = json.load(sys.stdin)  # result schema 1: docs/outputs.md
for arch, r in result["results"].items():
    gender, age = r["gender"], r["age"]
    print(f"{arch:9s} gender {gender['accuracy']:.3f} (AUC {gender['auc']:.3f})  age {age['accuracy']:.3f}  "
          f"one-off {age['one_off']:.3f}  class error {age['mean_error']:.2f} +- {age['std_error']:.2f}")
for pair, tests in result["tests"].items():
    print(pair + ": " + ", ".join(f"{task} p={t['p_value']:.2g}" for task, t in tests.items() if t))
PY
)
agegender compare --split "${2:-test}" --manifest "$manifest" --json 2>/dev/null | python3 -c "$summary"
