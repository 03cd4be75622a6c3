#!/usr/bin/env bash
# The newcomer's path, as CI runs it: build the wheel, install it into a fresh virtual
# environment, and from an empty folder with no mirror, no hub and a fresh quench home, fetch
# the bundled model, copy the default recipe and run it to a report and an MLflow run; then
# one lm-eval recipe on the bundled task excerpts. Usage: scripts/newcomer_check.sh [WORK_DIR]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -gt 0 ]; then work=$1; keep=1; else work=$(mktemp -d -t quench-newcomer.XXXXXX); keep=0; fi
mkdir -p "$work"
work=$(cd "$work" && pwd)
step() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }

step "build the wheel"
rm -rf "$work/dist"
python3 -m pip wheel -q --no-deps -w "$work/dist" "$repo" 2>&1 | grep -v "^WARNING: Location" || true
wheel=$(ls "$work"/dist/quench-*.whl)
echo "$wheel"

step "install it into a fresh virtual environment"
rm -rf "$work/venv"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
"$work/venv/bin/python" -m pip install -q torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
"$work/venv/bin/python" -m pip install -q "$wheel" 2>&1 | grep -v "^WARNING: Location" || true

step "run the bundled default from an empty folder, offline, with no mirror"
rm -rf "$work/user"
mkdir -p "$work/user"
cd "$work/user"
export PATH="$work/venv/bin:$PATH" QUENCH_HOME="$work/home"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
unset QUENCH_MIRROR MLFLOW_TRACKING_URI PYTHONPATH
quench setup models
quench recipes copy smollm2-default
quench run smollm2-default.yaml | tee run.txt
test -s artifacts/smollm2-default/report.md
grep -q "^mlflow:" run.txt
grep -q '"origin": "bundled"' artifacts/smollm2-default/report.json \
  || { echo "report.json does not say the bundled data was used"; exit 1; }

step "lm-eval on the bundled task excerpts"
quench run smollm2-lm-eval evaluation.lm_eval.limit=20 evaluation.perplexity.max_windows=4 \
  | tee lm_eval.txt
test -s artifacts/smollm2-lm-eval/report.md
step "the newcomer's path works"
[ "$keep" = 1 ] || rm -rf "$work"
