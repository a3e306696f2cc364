#!/usr/bin/env bash
# Faces in a video, one frame in 25 (about one per second), as JSON Lines.
# Usage: examples/video_every_second.sh VIDEO [EVERY]
set -euo pipefail
agegender predict "${1:?usage: $0 VIDEO [EVERY]}" --every "${2:-25}" --arch both --json
