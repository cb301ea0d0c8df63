#!/usr/bin/env bash
# Type checks of the `horus` Python package, as a user's type checker sees it:
#   mypy --strict    the Python modules (python/horus, python/horus_async_helpers.py) against
#                    the extension's stub (python/horus/_horus.pyi);
#   mypy.stubtest    the stub against the built extension `horus._horus`, so a class, method or
#                    argument added in Rust without its stub line fails here.
# Needs .venv with mypy and the package installed (./scripts/python-env.sh). Settings:
# [tool.mypy] in python-loader/pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# mypy's cache goes with the environment it describes (and out of the source tree).
export MYPY_CACHE_DIR="$root/.venv/.mypy_cache"
cd python-loader
echo "mypy --strict: horus, horus_async_helpers"
"$root/.venv/bin/python" -m mypy
echo "stubtest: horus/_horus.pyi against the built horus._horus"
"$root/.venv/bin/python" -m mypy.stubtest --mypy-config-file pyproject.toml horus._horus
