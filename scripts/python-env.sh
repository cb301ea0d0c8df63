#!/usr/bin/env bash
# Makes `.venv/` at the repository root (if missing) with the build and test tools, then builds
# the `horus` Python package (python-loader/, with maturin) and installs it there.
#   ./scripts/python-env.sh            debug build (what the tests use)
#   ./scripts/python-env.sh --release  optimised build (what the benchmarks use)
#   PYTHON_ENV_ONLY=1 ./scripts/python-env.sh   only the environment, no package build
# Afterwards: .venv/bin/python -c "import horus, horus_async_helpers"
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $($python --version 2>&1)" >&2
    "$python" -m venv .venv
fi
# Only asks the package index when something is missing.
# mypy: the type checks of scripts/python-typing.sh (mypy --strict and stubtest).
if ! .venv/bin/python -c "import maturin, pytest, numpy, mypy" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check \
        "maturin>=1.16,<2" "pytest>=8" "numpy>=1.26" "mypy>=1.15,<2"
fi
if [ -n "${PYTHON_ENV_ONLY:-}" ]; then
    exit 0
fi
# The same interpreter for cargo's builds and maturin's, so they share target/.
export PYO3_PYTHON="$root/.venv/bin/python"
export VIRTUAL_ENV="$root/.venv"
cd python-loader
"$root/.venv/bin/maturin" develop --quiet "$@" >&2
"$root/.venv/bin/python" -c "import horus, horus_async_helpers"
