"""Every ``python`` block of docs/sdk-python.md runs, in order, against a fresh server."""

from __future__ import annotations

import re

import pytest
from conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "sdk-python.md"


def python_blocks(text: str) -> list:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_every_python_sample_in_the_guide_runs(
    make_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not DOC.is_file():
        pytest.fail(f"{DOC} is missing", pytrace=False)
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 10
    server = make_server()
    # Registered so that what the samples put in os.environ is undone afterwards.
    monkeypatch.setenv("LATCHKEY_URL", "unset.invalid")
    monkeypatch.setenv("LATCHKEY_API_KEY", "")
    namespace = {
        "__name__": "docs_sample",
        "CLUSTER_URL": server.url,
        "API_TOKEN": server.admin_token,
        "ADMIN_PASSWORD": server.admin_password,
    }
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{DOC.name} python block {number}", "exec")
        exec(code, namespace)  # noqa: S102 - our own documentation
