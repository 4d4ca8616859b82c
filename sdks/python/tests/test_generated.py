"""Checks on the SDK's sources: the sync client is what the generator writes from the async
one, and the Literal types catch misspelt values under mypy --strict."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import skip_or_fail

SDK = Path(__file__).resolve().parents[1]


def test_the_sync_client_is_generated_from_the_async_one() -> None:
    try:
        import unasync  # noqa: F401
    except ImportError:
        skip_or_fail("unasync is not installed (pip install -e 'sdks/python[test]')")
    result = subprocess.run(
        [sys.executable, str(SDK / "scripts" / "gen_sync.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=SDK,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_literal_types_catch_misspelt_values() -> None:
    try:
        from mypy import api
    except ImportError:
        skip_or_fail("mypy is not installed (pip install -e 'sdks/python[test]')")
    sample = SDK / "tests" / "typecheck" / "misspelt.py"
    stdout, stderr, _ = api.run(
        ["--strict", "--no-incremental", "--show-error-codes", "--no-error-summary", str(sample)]
    )
    flagged = {int(n) for n in re.findall(r"misspelt\.py:(\d+): error:", stdout)}
    expected = {
        number
        for number, line in enumerate(sample.read_text().splitlines(), 1)
        if line.rstrip().endswith("# E")
    }
    assert flagged == expected, stdout + stderr
