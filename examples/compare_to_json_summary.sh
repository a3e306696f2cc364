#!/usr/bin/env bash
# Compare both architectures on the test split and print a one-line summary per architecture.
# Usage: examples/compare_to_json_summary.sh [MANIFEST]
set -euo pipefail
manifest=${1:-data/utkface/manifest.csv}
agegender compare --split test --manifest "$manifest" --json 2>/dev/null | python3 -c '
import json, sys
result = json.load(sys.stdin)
for arch in ("facenet", "caffenet"):
    r = result.get(arch)
    if r:
        print(f"{arch:9s} gender {r[\"gender\"][\"accuracy\"]:.3f} (AUC {r[\"gender\"][\"auc\"]:.3f})  "
              f"age {r[\"age\"][\"accuracy\"]:.3f}  one-off {r[\"age\"][\"one_off\"]:.3f}  "
              f"class error {r[\"age\"][\"mean_error\"]:.2f} +- {r[\"age\"][\"std_error\"]:.2f}")
for pair, tests in result.get("mcnemar", {}).items():
    print(pair + ": " + ", ".join(f"{task} p={t[\"p_value\"]:.2g}" for task, t in tests.items()))
'
