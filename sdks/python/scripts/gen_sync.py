"""Writes the synchronous client from the asynchronous one.

    python scripts/gen_sync.py           # rewrite src/latchkey/_sync/ from src/latchkey/_async/
    python scripts/gen_sync.py --check   # exit 1 if the generated files are out of date

The code is converted by the ``unasync`` tool (PyPI), token by token, as httpx and httpcore
do: ``async``/``await`` disappear and the names below are swapped. The same names are then
swapped in docstrings and comments, which ``unasync`` leaves alone, and the result is put
through ``ruff format`` so removing ``await`` never leaves a line formatted differently
from what a person would write. Needs ``unasync`` and ``ruff`` (the ``test`` extra).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

import unasync

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "latchkey" / "_async"
TARGET = ROOT / "src" / "latchkey" / "_sync"

#: Names with a sync twin not spelled ``Sync<Name>`` (unasync's default for ``Async<Name>``).
RENAMES: Dict[str, str] = {
    "AsyncClient": "Client",  # ours and httpx's
    "AsyncTokens": "Tokens",
    "AsyncMembers": "Members",
    "AsyncUsers": "Users",
    "AsyncWebhooks": "Webhooks",
    "AsyncPaginator": "SyncPage",
    "AsyncIterator": "Iterator",
    "paginate_async": "paginate_sync",
    "async_sleep": "sync_sleep",
    "aclose": "close",
    "_async": "_sync",
}

#: Replaces the source module's docstring.
HEADER = '''"""The synchronous client, generated from ``latchkey/_async/{name}``.

Do not edit: change the async source, then run ``python scripts/gen_sync.py`` (a test fails
while this file is out of date).
"""
'''
MODULE_DOCSTRING = re.compile(r'\A"""(?:.|\n)*?"""\n')

#: Prose (docstrings, comments) after the code is converted.
PROSE = [
    (re.compile(r"\basynchronous\b"), "synchronous"),
    (re.compile(r"\basync with\b"), "with"),
    (re.compile(r"\basync for\b"), "for"),
    (re.compile(r"\bawait "), ""),
]


def _prose(text: str) -> str:
    for pattern, replacement in PROSE:
        text = pattern.sub(replacement, text)
    for old, new in RENAMES.items():
        text = re.sub(rf"\b{re.escape(old)}\b", new, text)
    # unasync's own default: Async<Name> -> Sync<Name>
    return re.sub(r"\bAsync([A-Z]\w*)", r"Sync\1", text)


def _ruff(text: str, name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", name, "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"ruff {args[0]} failed on the generated {name}:\n{result.stderr}")
    return result.stdout


def _format(text: str, name: str) -> str:
    # Imports renamed by unasync need sorting again (isort's rule), then the layout.
    text = _ruff(text, name, "check", "--fix", "--select", "I", "--quiet")
    return _ruff(text, name, "format", "--quiet")


def generate() -> Dict[Path, str]:
    """The generated files' paths and contents."""
    out: Dict[Path, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        src = base / "_async"
        src.mkdir()
        sources: List[str] = []
        for path in sorted(SOURCE.glob("*.py")):
            (src / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
            sources.append(str(src / path.name))
        rule = unasync.Rule(
            fromdir=str(src) + "/",
            todir=str(base / "_sync") + "/",
            additional_replacements=RENAMES,
        )
        unasync.unasync_files(sources, [rule])
        for path in sorted((base / "_sync").glob("*.py")):
            text = _prose(path.read_text(encoding="utf-8"))
            if path.name != "__init__.py":
                text = MODULE_DOCSTRING.sub("", text, count=1)
                text = HEADER.format(name=path.name) + text
            target = TARGET / path.name
            out[target] = _format(text, str(target.relative_to(ROOT)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args()
    stale = []
    for target, text in generate().items():
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        stale.append(target)
        if not args.check:
            target.write_text(text, encoding="utf-8")
    if args.check and stale:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        print(f"out of date: {names}; run `python scripts/gen_sync.py`", file=sys.stderr)
        return 1
    for target in stale:
        print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
