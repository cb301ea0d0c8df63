#!/usr/bin/env bash
# Runs one benchmark group and prints its BENCH lines:
#   BENCH <name> value=<v> unit=<u> baseline=<b> ratio=<r> [key=value ...]
# Usage: ./scripts/bench.sh <group>     groups: dispatch, topics, isolation, host, network, reload, plugins, apply, latency, large, python, record
# Release build; results go to docs/performance.md by hand, with the command.
set -euo pipefail
cd "$(dirname "$0")/.."
group="${1:-}"
case "$group" in
  dispatch)
    cargo build --release -q -p bench-noop
    cargo bench -q -p horus-host --bench dispatch
    ;;
  topics)
    cargo bench -q -p horus-host --bench topics
    ;;
  host)
    cargo build --release -q -p horus-host -p bench-noop -p jitter-probe -p imu-sim -p attitude-filter -p telemetry-sink -p hello-counter
    cargo bench -q -p horus-host --bench host
    ;;
  isolation)
    cargo build --release -q -p bench-noop -p faulty-nodes
    cargo bench -q -p horus-host --bench isolation
    ;;
  network)
    cargo bench -q -p horus-host --features network --bench network
    ;;
  reload)
    cargo build --release -q -p horus-host -p reload-counter -p reload-counter-v2 -p jitter-probe
    cargo bench -q -p horus-host --bench reload
    ;;
  apply)
    cargo build --release -q -p horus-host -p bench-noop -p jitter-probe -p hello-counter
    cargo bench -q -p horus-host --bench apply
    ;;
  plugins)
    cargo build --release -q -p horus-host -p imu-sim -p attitude-filter -p telemetry-sink -p hello-counter -p bench-noop
    cargo bench -q -p horus-host --bench plugins
    ;;
  large)
    cargo bench -q -p horus-host --bench topics -- --large
    ;;
  latency)
    # The Python chain runs the optimised package of .venv through the release host.
    ./scripts/python-env.sh --release
    cargo build --release -q -p horus-host -p jitter-probe
    cargo bench -q -p horus-host --bench latency
    ;;
  python)
    # The package built optimised into .venv, and the release host for the in-host figures.
    ./scripts/python-env.sh --release
    cargo build --release -q -p horus-host
    .venv/bin/python python-loader/bench/bench.py
    ;;
  record)
    cargo build --release -q -p horus-host -p seq-stream
    # The recordings (gigabytes) go to a tmpfs directory of the run's own, removed at the end.
    shm=/dev/shm
    if [ "$(stat -f -c %T "$shm" 2>/dev/null)" != tmpfs ]; then
      shm="${XDG_RUNTIME_DIR:?neither /dev/shm nor \$XDG_RUNTIME_DIR is a tmpfs}"
    fi
    tmp="$(mktemp -d "$shm/bench-record.XXXXXX")"
    # The hosts' topics live in a namespace of this run's own: a host interrupted with the
    # benchmark (Ctrl-C) cannot leave one behind.
    ns="benchrec$$"
    trap 'rm -rf "$tmp"; rm -f /dev/shm/horus."$ns".* /dev/shm/horus."$ns"@*' EXIT
    trap 'exit 130' INT TERM
    HORUS_BENCH_DIR="$tmp" HORUS_NAMESPACE="$ns" cargo bench -q -p horus-host --bench record
    ;;
  *)
    echo "usage: $0 <group>   (groups: dispatch, topics, isolation, host, network, reload, plugins, apply, latency, large, python, record)" >&2
    exit 2
    ;;
esac
