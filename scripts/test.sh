#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
# Formatting, lints, a build of every crate (the end-to-end tests run the built `horus` binary
# and plugin libraries), the `horus` Python package into .venv/ and its type checks, its wheel
# installed and run in a fresh venv, then every Rust test and every Python test.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# One feature set for every cargo step, so clippy, build and test share their artifacts: network
# hubs (Zenoh) and compressed recordings on, and their end-to-end tests with them. maturin builds
# the Python package with the same `network` feature (python-loader/pyproject.toml).
features=(--features horus-host/network,horus-python/network,horus-e2e/network,horus-e2e/compression)

step "cargo fmt --check"
cargo fmt --all -- --check

step "python environment (.venv: maturin, pytest, numpy, mypy)"
# Also the interpreter pyo3 builds against, for cargo and maturin alike (one shared target/).
PYTHON_ENV_ONLY=1 ./scripts/python-env.sh
export PYO3_PYTHON="$PWD/.venv/bin/python"

step "cargo clippy"
cargo clippy --workspace --all-targets "${features[@]}" -- -D warnings

step "cargo build (binary and plugins for the end-to-end tests)"
cargo build --workspace "${features[@]}"

step "horus Python package (maturin develop into .venv)"
./scripts/python-env.sh

step "python typing (mypy --strict, stubtest against the built extension)"
./scripts/python-typing.sh

step "the wheel as a user installs it (maturin build, fresh venv, a node run)"
# Right after `maturin develop`: same interpreter and profile, so the wheel reuses its build.
./scripts/wheel-check.sh

step "cargo test"
cargo test --workspace "${features[@]}"

step "local-only build (horus-host without network, as the README's demo builds it)"
cargo clippy -p horus-host --all-targets -- -D warnings
cargo test -p horus-host --lib

step "pytest"
.venv/bin/python -m pytest -q -p no:cacheprovider python-loader/tests
