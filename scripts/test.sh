#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
# Formatting, lints, a build of every crate (the end-to-end tests run the built `horus` binary
# and plugin libraries), then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build (binary and plugins for the end-to-end tests)"
cargo build --workspace

step "cargo test"
cargo test --workspace
