#!/usr/bin/env python3
"""No test leaves a process behind (scripts/test.sh).

    leftovers.py snapshot FILE   before the tests: the processes that already run
    leftovers.py check FILE      after them: fails, listing each, when a process the tests
                                 started still runs (after a grace period for ones that are
                                 exiting), and stops them so the next run starts clean

A process counts as started by the tests when it was not running at the snapshot and
either carries the run's marker in its environment (`TEST_RUN_MARK`, exported by
scripts/test.sh and inherited by everything it starts (not `LATCHKEY_`-prefixed: tests strip
those from the servers they start), also daemons that start their own
session, like Chromium's crash handler) or belongs to the session of scripts/test.sh
(for programs that overwrite their environment with their process title, like nginx and
PostgreSQL). Other processes on the machine (other sessions, no marker) are never touched.

Linux only (reads /proc); stdlib only.
"""

import os
import signal
import sys
import time
from typing import Dict, List, Optional, Set, Tuple

GRACE_SECONDS = 10.0

Key = Tuple[int, int]  # (pid, start time in clock ticks): a pid alone can be reused


def stat_of(pid: int) -> Optional[Tuple[str, int, int, int]]:
    """(state, ppid, session, start time) of `pid`, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[0], int(rest[1]), int(rest[3]), int(rest[19])


def pids() -> List[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return "?"
    return cmd[:200] or "?"


def has_marker(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return marker in f.read().split(b"\0")
    except OSError:
        return False


def snapshot() -> Set[Key]:
    keys: Set[Key] = set()
    for pid in pids():
        st = stat_of(pid)
        if st is not None:
            keys.add((pid, st[3]))
    return keys


def ancestors() -> Set[int]:
    """This checker and every process above it (scripts/test.sh, its shell, ...)."""
    chain: Set[int] = set()
    pid = os.getpid()
    while pid > 1 and pid not in chain:
        chain.add(pid)
        st = stat_of(pid)
        if st is None:
            break
        pid = st[1]
    return chain


def started_by_others(ppid: int, before: Set[Key], mine: Set[int]) -> bool:
    """Whether a process's parent ran before the tests and is none of the test command's
    own ancestors: a loop that shares the session (a CI watchdog, a shell's periodic job)
    starting its next child, not something the tests left. Orphans (reparented to init)
    still count."""
    if ppid <= 1 or ppid in mine:
        return False
    st = stat_of(ppid)
    return st is not None and (ppid, st[3]) in before


def leftovers(before: Set[Key], marker: bytes, session: int) -> Dict[int, str]:
    mine = ancestors()
    found: Dict[int, str] = {}
    for pid in pids():
        st = stat_of(pid)
        if st is None or pid in mine or (pid, st[3]) in before:
            continue
        state, ppid, sid, _ = st
        if state in ("Z", "X"):  # exited, waiting to be reaped: not running
            continue
        if has_marker(pid, marker) or (
            sid == session and not started_by_others(ppid, before, mine)
        ):
            found[pid] = command_of(pid)
    return found


def main(argv: List[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("snapshot", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[2]
    if argv[1] == "snapshot":
        with open(path, "w", encoding="utf-8") as f:
            for pid, start in sorted(snapshot()):
                f.write(f"{pid} {start}\n")
        return 0
    run = os.environ.get("TEST_RUN_MARK")
    if not run:
        print("leftovers.py check: TEST_RUN_MARK is not set", file=sys.stderr)
        return 2
    marker = f"TEST_RUN_MARK={run}".encode()
    with open(path, encoding="utf-8") as f:
        before = {(int(p), int(s)) for p, s in (line.split() for line in f if line.strip())}
    session = os.getsid(0)
    # Some processes take a moment to go after their parent (crash handlers, workers
    # finishing a request): poll until none is left, with a deadline.
    deadline = time.monotonic() + GRACE_SECONDS
    found = leftovers(before, marker, session)
    while found and time.monotonic() < deadline:
        time.sleep(0.2)
        found = leftovers(before, marker, session)
    if not found:
        return 0
    print(
        f"FAIL: {len(found)} process(es) started by the tests still run after them:",
        file=sys.stderr,
    )
    for pid, cmd in sorted(found.items()):
        print(f"  {pid}: {cmd}", file=sys.stderr)
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
