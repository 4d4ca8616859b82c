#!/usr/bin/env python3
"""Same-run baseline for the cold verify: SQLite's own cost of the store's read.

Runs the statement `find_secret` runs (`rows::SECRET_SELECT ... WHERE s.hash = $1`) for
SAMPLES secrets of the same store, every (count / SAMPLES)-th in insertion order as the
loadtool's cold-verify steps through its tokens, on a fresh connection (cold SQLite page
cache, warm OS cache, as for a fresh verifier), from Python's in-process sqlite3 (C): no
thread hop, no pool, no row decoding into Rust types, no hashing. What the verifier
adds on top of this is its own cost (hash, pool, driver thread, decode, grant).

Usage: coldverify_baseline.py DB SAMPLES
"""
import sqlite3
import sys
import time

SQL = (
    "SELECT s.token_id AS s_token_id, s.hash AS s_hash, s.key_id AS s_key_id, "
    "s.not_after AS s_not_after, "
    "t.id, t.org_id, t.name, t.token_type, t.hint, t.workspace_id, "
    "w.name AS workspace_name, t.owner_id, u.username AS owner_username, t.created_by, "
    "t.scopes, t.projects, t.environment, t.created_at, t.expires_at, t.last_used_at, "
    "t.last_used_ip, t.state, t.leaked"
    " FROM token_secrets s JOIN tokens t ON t.id = s.token_id"
    " LEFT JOIN workspaces w ON w.id = t.workspace_id"
    " LEFT JOIN users u ON u.id = t.owner_id"
    " WHERE s.hash = ?"
)


def percentile(sorted_us, p):
    i = round((len(sorted_us) - 1) * p)
    return sorted_us[min(i, len(sorted_us) - 1)]


def main():
    db, samples = sys.argv[1], int(sys.argv[2])
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as pick:
        hashes = [h for (h,) in pick.execute("SELECT hash FROM token_secrets ORDER BY rowid")]
    step = max(len(hashes) // max(samples, 1), 1)
    chosen = hashes[1::step][:samples]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.execute(SQL, (b"",)).fetchall()  # compile once, as sqlx caches the statement
    times = []
    for h in chosen:
        started = time.perf_counter_ns()
        row = conn.execute(SQL, (h,)).fetchone()
        times.append((time.perf_counter_ns() - started) / 1000)
        assert row is not None
    conn.close()
    times.sort()
    print(
        "RESULT cold_verify_baseline what=sqlite3-in-process-same-select tokens=%d n=%d "
        "p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f"
        % (
            len(hashes),
            len(times),
            percentile(times, 0.5),
            percentile(times, 0.9),
            percentile(times, 0.99),
            percentile(times, 0.999),
            times[-1],
        )
    )


if __name__ == "__main__":
    main()
