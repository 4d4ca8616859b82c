#!/usr/bin/env bash
# Runs every test: Rust unit, conformance and black-box suites, then the Python SDK suite.
# Tests that need PostgreSQL or a browser skip with a printed reason, unless
# LATCHKEY_TEST_REQUIRE_ALL=1 (set by .ci/run), which turns every skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# A Python virtualenv for the tests that use an independent JWT library (PyJWT) and for
# the Python SDK suite; installed once, reused on a warm machine.
PY="$(pwd)/.venv/bin/python"
if [ ! -x "$PY" ]; then
  python3 -m venv .venv
fi
if ! "$PY" -c "import jwt, cryptography" 2>/dev/null; then
  "$PY" -m pip install --quiet --disable-pip-version-check "pyjwt[crypto]>=2.8"
fi
export LATCHKEY_TEST_PYTHON="$PY"

cargo build --workspace --bins
cargo test --workspace

if [ -d sdks/python/tests ]; then
  if ! "$PY" -c "import httpx, pytest, latchkey" 2>/dev/null; then
    "$PY" -m pip install --quiet --disable-pip-version-check -e "./sdks/python[test]"
  fi
  LATCHKEY_BIN="$(pwd)/target/debug/latchkey" "$PY" -m pytest -q sdks/python/tests
fi
