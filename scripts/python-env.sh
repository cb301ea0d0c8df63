#!/usr/bin/env bash
# Makes `.venv/` at the repository root (if missing) with the build and test tools, then builds
# the `horus` Python package (python-loader/, with maturin) and installs it there.
#   ./scripts/python-env.sh            debug build (what the tests use)
#   ./scripts/python-env.sh --release  optimised build (what the benchmarks use)
#   PYTHON_ENV_ONLY=1 ./scripts/python-env.sh   only the environment, no package build
# Afterwards: .venv/bin/python -c "import horus, horus_async_helpers"
# Progress goes to stderr: a step line with the seconds since the start before each slow step,
# then the tools' own lines (pip's "Collecting …", cargo's "Compiling …" through maturin), so a
# cold build (several minutes: pyo3, Zenoh) is not silent. Bars and spinners only on a terminal:
# in CI logs they would be one line per redraw.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
python=${PYTHON:-python3}
step() { printf '[python-env %3ds] %s\n' "$SECONDS" "$*" >&2; }
if [ -t 2 ]; then
    pip_progress=(--progress-bar on)
else
    pip_progress=(--progress-bar off)
    export CARGO_TERM_PROGRESS_WHEN=never
fi
if [ ! -x .venv/bin/python ]; then
    step "creating .venv with $($python --version 2>&1)"
    "$python" -m venv .venv
fi
# Only asks the package index when something is missing.
# mypy: the type checks of scripts/python-typing.sh (mypy --strict and stubtest); mcap: the
# recording tests read `horus record`'s files with the format's own library.
if ! .venv/bin/python -c "import maturin, pytest, numpy, mypy, mcap" 2>/dev/null; then
    step "installing maturin, pytest, numpy, mypy, mcap into .venv (pip)"
    .venv/bin/python -m pip install --disable-pip-version-check "${pip_progress[@]}" \
        "maturin>=1.16,<2" "pytest>=8" "numpy>=1.26" "mypy>=1.15,<2" "mcap>=1.2,<2" >&2
fi
if [ -n "${PYTHON_ENV_ONLY:-}" ]; then
    step "environment ready (PYTHON_ENV_ONLY: the package is not built)"
    exit 0
fi
# The same interpreter for cargo's builds and maturin's, so they share target/.
export PYO3_PYTHON="$root/.venv/bin/python"
export VIRTUAL_ENV="$root/.venv"
cd python-loader
step "building the horus package with maturin develop${*:+ $*} (cargo's lines follow; a cold build takes minutes)"
"$root/.venv/bin/maturin" develop "$@" >&2
"$root/.venv/bin/python" -c "import horus, horus_async_helpers"
step "done: .venv/bin/python -c \"import horus\" works"
