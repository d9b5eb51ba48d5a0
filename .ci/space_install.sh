#!/usr/bin/env bash
# Install the way a Hugging Face Space does: a fresh venv, then plain
# `pip install -r requirements.txt` (no flags, no environment variables), then check that sam2's
# video predictor imports and the app builds its tabs. Slow (torch + a sam2 sdist build in an
# isolated env: ~4 min and ~6 GB here); run by hand or from CI: bash .ci/space_install.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
VENV=$(mktemp -d)/venv
"$PY" -m venv "$VENV"
[ -f pre-requirements.txt ] && "$VENV/bin/pip" install -r pre-requirements.txt
# --no-cache-dir: a Space has no pip cache. Where PyTorch's index cannot be reached (CI here),
# PIP_RETRIES=0 makes pip skip it at once instead of retrying it for every package; a Space
# reaches it and needs no such setting.
time PIP_RETRIES=${PIP_RETRIES:-0} "$VENV/bin/pip" install --no-cache-dir -r requirements.txt
"$VENV/bin/python" - <<'PY'
import os
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
from sam2.build_sam import build_sam2_video_predictor  # noqa: F401
import app
demo = app.create_app()
print("space install OK: sam2 video predictor imports; app built:", type(demo).__name__)
PY
rm -rf "$(dirname "$VENV")"
