#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every test (labels unit, slow;
# gpu tests skip themselves without CUDA). Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."
EMLAB_WITH_PYTORCH=${EMLAB_WITH_PYTORCH:-0} scripts/setup.sh
BUILD_DIR="${EMLAB_BUILD_DIR:-build}"
# The Hugging Face reference libraries (transformers, peft, tokenizers, ...) in a venv outside the
# clone; tests that compare against them skip with a message where it is absent. CI must have it.
if PYREF=$(scripts/pyref.sh); then
  export EMLAB_PYTHON="$PYREF"
  echo "$PYREF" > "$BUILD_DIR/pyref_python"
elif [ "${CI:-}" = true ]; then
  echo "scripts/pyref.sh failed: CI needs the reference libraries" >&2
  exit 1
else
  echo "warning: the reference libraries could not be installed; the tests against them will skip" >&2
fi
cd "$BUILD_DIR"
# Tests run in parallel, one per core: each test process (and each emlab it starts) uses one
# tensor thread, since OpenMP threads competing for busy cores slow everything several-fold.
export EMLAB_THREADS=1 OMP_NUM_THREADS=1
ctest --output-on-failure -j "$(nproc)" "$@"
