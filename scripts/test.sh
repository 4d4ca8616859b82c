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
# The binary the Python suites start (honours CARGO_TARGET_DIR like cargo does).
LATCHKEY_BIN="${CARGO_TARGET_DIR:-$(pwd)/target}/debug/latchkey"
case "$LATCHKEY_BIN" in /*) ;; *) LATCHKEY_BIN="$(pwd)/$LATCHKEY_BIN" ;; esac
export LATCHKEY_BIN

# No test leaves a process behind: what runs now is remembered, and at the end a check
# fails when anything the tests started still runs (scripts/leftovers.py says how it
# tells: this run's marker in the environment, or this script's session).
TEST_RUN_MARK="$$-$(date +%s%N)"
export TEST_RUN_MARK
leftovers_snapshot="$(mktemp)"
trap 'rm -f "$leftovers_snapshot"' EXIT
python3 scripts/leftovers.py snapshot "$leftovers_snapshot"

cargo build --workspace --bins
cargo test --workspace

# The black-box API suite once more, every test server on a fresh PostgreSQL database of
# its own (docs/scale-out.md). Tests that belong to the first pass only (about the SQLite
# file itself, or starting PostgreSQL nodes of their own either way) say so in their first
# line (`harness::sqlite_pass_only`) and skip here with the reason.
LATCHKEY_TEST_BACKEND=postgres cargo test -p latchkey-cli --test e2e

if [ -d sdks/python/tests ]; then
  if ! "$PY" -c "import httpx, pytest, latchkey, fastapi, uvicorn, unasync, ruff, mypy, standardwebhooks, aiosmtpd, authlib" 2>/dev/null; then
    "$PY" -m pip install --quiet --disable-pip-version-check -e "./sdks/python[test]"
  fi
  # Lints and strict types of the SDK (configured in its pyproject.toml): ~4 s cold.
  (cd sdks/python && "$PY" -m ruff check --quiet . && "$PY" -m ruff format --check --quiet . \
    && "$PY" -m mypy)
  "$PY" -m pytest -q sdks/python/tests
fi

# The TypeScript SDK (sdks/typescript): compiled by tsc, its types checked, then node --test
# against the real binary, Express and Hono apps included (~5 s with npm ci; node_modules
# is kept, so a warm machine skips the install).
if [ -f sdks/typescript/package.json ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "SKIP: npm is not installed: the TypeScript SDK tests do not run" >&2
    [ "${LATCHKEY_TEST_REQUIRE_ALL:-}" = 1 ] && exit 1
  else
    ts_deps_missing=0
    for dep in typescript express hono; do
      [ -f "sdks/typescript/node_modules/$dep/package.json" ] || ts_deps_missing=1
    done
    if [ "$ts_deps_missing" = 1 ]; then
      npm ci --prefix sdks/typescript --no-audit --no-fund --silent
    fi
    npm test --prefix sdks/typescript --silent
  fi
fi

# The Debian package (tests/packaging): built with cargo-deb from the debug binary above,
# installed with dpkg, started as its systemd unit says, backed up, restored, upgraded and
# purged (~5 s; installing cargo-deb on a fresh machine: ~40 s, once).
if [ "$(id -u)" = 0 ] && ! command -v cargo-deb >/dev/null 2>&1 \
  && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-deb" ]; then
  cargo install --quiet --locked --no-default-features cargo-deb --version 3.8.0
fi
# docs/operations.md's TLS recipe on a real nginx in front of the binary (tests/operations).
"$PY" -m pytest -q -p no:cacheprovider tests/packaging tests/operations

# The console's browser tests (tests/console): the real binary driven through headless
# Debian Chromium by accessible names, axe-core on every page. Without a browser they skip
# with the reason (and fail under LATCHKEY_TEST_REQUIRE_ALL=1).
if ! "$PY" -c "import selenium, pytest" 2>/dev/null; then
  "$PY" -m pip install --quiet --disable-pip-version-check -r tests/console/requirements.txt
fi
AXE_VERSION="4.10.3"
if [ ! -f tests/console/node_modules/axe-core/axe.min.js ] && command -v npm >/dev/null 2>&1; then
  npm install --silent --no-audit --no-fund --no-save --prefix tests/console "axe-core@$AXE_VERSION"
fi
"$PY" -m pytest -c tests/console/pytest.ini tests/console

# Nothing the tests started may outlive them (nginx workers, proxies, browsers, servers).
python3 scripts/leftovers.py check "$leftovers_snapshot"
