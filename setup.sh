#!/usr/bin/env bash
# One command sets SteerSeg up on a fresh machine: a virtual environment in .venv with
# everything the app and the tests need. Usage: bash setup.sh   (then: source .venv/bin/activate)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${STEERSEG_VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first: sam2 compiles against it without build isolation (no 3 GB torch in a build env).
"$VENV/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1
# requirements.txt is also what a Space installs; its extra index (PyTorch's CUDA 12.8 builds, for
# Space GPU drivers) is left out here: torch is already installed above, and the index may be
# unreachable (pip would retry it for every package).
REQS=$(mktemp)
grep -v '^--extra-index-url' requirements.txt > "$REQS"
SAM2_BUILD_CUDA=0 "$VENV/bin/python" -m pip install -q --no-build-isolation -r "$REQS" -r requirements-dev.txt
rm -f "$REQS"
# Browser tests use Debian's chromium (no browser download); skipped where it cannot be installed.
if [ "${STEERSEG_SKIP_CHROMIUM:-0}" != "1" ] && ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
        (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "note: chromium not installed; browser tests will be skipped"
    else
        echo "note: install chromium (e.g. apt-get install chromium) to run the browser tests"
    fi
fi
echo "SteerSeg is set up in $VENV. Activate with: source $VENV/bin/activate"
