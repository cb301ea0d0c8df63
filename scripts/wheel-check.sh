#!/usr/bin/env bash
# The wheel is the package: builds the `horus` wheel with maturin (as `pip install ./python-loader`
# would), installs it into a fresh virtual environment with no package index, and runs a node
# there. The editable install of scripts/python-env.sh puts python-loader/python/ on sys.path, so
# it cannot tell whether a module (e.g. the top-level `horus_async_helpers`) is missing from the
# wheel; this can.
#   ./scripts/wheel-check.sh     (needs .venv: ./scripts/python-env.sh)
# Debug profile, the same PYO3_PYTHON as scripts/test.sh and python-env.sh, and cargo's usual
# target directory (CARGO_TARGET_DIR if set), so it reuses `maturin develop`'s build.
# numpy is not installed: the package imports it only to send or receive a numpy array.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
say() { printf 'wheel-check: %s\n' "$*"; }

export PYO3_PYTHON="$root/.venv/bin/python"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/horus-wheel-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

say "building the wheel (maturin build, debug profile)"
(cd python-loader && "$root/.venv/bin/maturin" build --quiet --out "$tmp/wheels" >&2)
wheel=$(ls "$tmp"/wheels/horus-*.whl)
say "built $(basename "$wheel"); its modules:"
"$PYO3_PYTHON" - "$wheel" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
for name in sorted(names):
    if ".dist-info/" not in name:
        print("  " + name)
for required in ("horus/__init__.py", "horus/py.typed", "horus/_horus.pyi", "horus_async_helpers.py"):
    if required not in names:
        sys.exit(f"wheel-check: {required} is missing from the wheel (python-loader/pyproject.toml)")
EOF

say "installing it into a fresh venv (pip --no-index)"
# The base interpreter of .venv, so the wheel's cp3XX tag fits; the new venv sees none of .venv's
# packages.
"$PYO3_PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --no-index --disable-pip-version-check "$wheel"

say "importing horus and horus_async_helpers, running a scheduler with one node"
# From the temp dir, with no PYTHONPATH: nothing may come from the source tree. `timeout` bounds
# the run if the scheduler hangs (the script stops the scheduler itself after a few ticks).
cd "$tmp"
HORUS_NAMESPACE="wheelcheck$$" PYTHONPATH='' timeout 60 "$tmp/venv/bin/python" - <<'EOF'
import sys

import horus
import horus_async_helpers

for module in (horus, horus_async_helpers):
    assert module.__file__ is not None and module.__file__.startswith(sys.prefix), (
        f"{module.__name__} imported from {module.__file__}, not from the fresh venv {sys.prefix}"
    )
assert "numpy" not in sys.modules, "import horus imported numpy"


class Ticker(horus.Node):
    def __init__(self, scheduler):
        super().__init__(name="ticker")
        self.scheduler = scheduler
        self.ticks = 0
        self.helper = horus_async_helpers.AsyncHelper(max_workers=1)
        self.results = []

    def tick(self):
        self.ticks += 1
        self.helper.submit(f"op{self.ticks}", lambda n: n * 2, self.ticks)
        self.results += [r for _, r, _ in self.helper.check_completed()]
        if self.ticks >= 5 and self.results:
            self.scheduler.stop()


scheduler = horus.Scheduler()
node = Ticker(scheduler)
scheduler.add(node)
scheduler.run(duration=10.0)
node.helper.shutdown()
stats = scheduler.get_node_stats("ticker")
assert node.ticks >= 5 and stats["total_ticks"] == node.ticks, (node.ticks, stats["total_ticks"])
assert stats["total_failures"] == 0, stats["last_error"]
print(f"wheel-check: ok: {node.ticks} ticks, {len(node.results)} async results, "
      f"horus from {horus.__file__}")
EOF
say "done (removing $tmp)"
