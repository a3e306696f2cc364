#!/usr/bin/env bash
# Predict every face in a folder (recursively) with both architectures, to a CSV and annotated copies.
# Usage: examples/predict_folder_to_csv.sh PHOTOS_DIR [OUT_DIR]
set -euo pipefail
photos=${1:?usage: $0 PHOTOS_DIR [OUT_DIR]}
out=${2:-out/predictions}
mkdir -p "$out"
# exit code 1 means some file could not be read; the CSV still lists it with its error
agegender predict "$photos" --arch both --csv "$out/faces.csv" --annotate "$out/annotated" \
  --summary --summary-plot "$out/summary.png" || echo "some files could not be read; see $out/faces.csv" >&2
echo "faces: $(($(wc -l < "$out/faces.csv") - 1)) rows in $out/faces.csv" >&2
