#!/usr/bin/env bash
# Runs every test: Rust unit, conformance and black-box suites, then the Python SDK suite.
# Tests that need PostgreSQL or a browser skip with a printed reason, unless
# LATCHKEY_TEST_REQUIRE_ALL=1 (set by .ci/run), which turns every skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --bins
cargo test --workspace

if [ -d sdks/python/tests ]; then
  PY=".venv/bin/python"
  if [ ! -x "$PY" ]; then
    python3 -m venv .venv
  fi
  if ! "$PY" -c "import httpx, pytest, latchkey" 2>/dev/null; then
    "$PY" -m pip install --quiet --disable-pip-version-check -e "./sdks/python[test]"
  fi
  LATCHKEY_BIN="$(pwd)/target/debug/latchkey" "$PY" -m pytest -q sdks/python/tests
fi
