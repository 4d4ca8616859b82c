#!/usr/bin/env python3
"""Turns the RESULT lines of a bench run (results.txt) and criterion's estimates into the
markdown tables of bench/RESULTS.md: medians over repeated runs, each figure beside its
baseline from the same run, and the ratio the target is stated in.

usage: report.py [RESULTS_TXT] [CRITERION_DIR]
"""
import json
import os
import statistics
import sys
from collections import defaultdict

results = sys.argv[1] if len(sys.argv) > 1 else "/tmp/latchkey-bench/results.txt"
crit = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
    os.path.dirname(__file__), "..", "target", "criterion")

runs = defaultdict(list)
if os.path.exists(results):
    for line in open(results):
        if not line.startswith("RESULT "):
            continue
        kv = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
        name = kv.get("name") or kv.get("kind") or line.split()[1]
        runs[name].append(kv)


def med(name, key):
    vals = []
    for kv in runs.get(name, []):
        try:
            vals.append(float(kv[key]))
        except (KeyError, ValueError):
            pass
    return statistics.median(vals) if vals else None


def f(v, nd=0):
    return "—" if v is None else f"{v:,.{nd}f}"


out = []
# --- criterion ---------------------------------------------------------------------
def est(group, bench):
    p = os.path.join(crit, group, bench, "new", "estimates.json")
    try:
        e = json.load(open(p))
        return e["median"]["point_estimate"], e["mean"]["confidence_interval"]
    except (OSError, KeyError, ValueError):
        return None, None


hmac, _ = est("baseline", "hmac_sha256")
if hmac:
    out.append("### In-process verifier (criterion, median of samples)\n")
    out.append("| bench | time | × HMAC-SHA256 | target |")
    out.append("|---|---|---|---|")
    rows = [
        ("baseline", "hmac_sha256", "baseline"),
        ("baseline", "checksum", ""),
        ("verify", "hit", "≤ 1 µs and ≤ 2× HMAC"),
        ("verify", "hit_sync", "≤ 1 µs and ≤ 2× HMAC"),
        ("verify", "bad_checksum", "≪ hit"),
        ("verify", "unknown_negative_cached", ""),
        ("verify", "authenticate_token_hit", ""),
        ("verify", "miss_sqlite", "(cold verify, see below)"),
        ("router", "auth_verify", ""),
        ("router", "me", ""),
        ("router", "baseline_empty_runtime_block_on", "(overhead inside the router rows)"),
    ]
    for g, b, target in rows:
        t, _ = est(g, b)
        if t is None:
            continue
        shown = f"{t:.1f} ns" if t < 10_000 else f"{t / 1000:.2f} µs"
        out.append(f"| `{g}/{b}` | {shown} | {t / hmac:.2f} | {target} |")
    out.append("")

# --- HTTP ----------------------------------------------------------------------------
ng = med("nginx-return200", "rps")
if ng:
    out.append("### Token-checked HTTP vs nginx `return 200` (wrk -t2 -c32, medians)\n")
    out.append("| endpoint | req/s | × nginx | p50 ms | p99 ms | server cores | non-2xx | target |")
    out.append("|---|---|---|---|---|---|---|---|")
    for name, target in [
        ("nginx-return200", "baseline"),
        ("latchkey-auth-verify", "≥ 0.7×, p99 < 2 ms"),
        ("latchkey-me", "≥ 0.7×, p99 < 2 ms"),
        ("latchkey-healthz-notoken", ""),
        ("latchkey-auth-verify-bad-checksum-401", "(all 401 by design)"),
    ]:
        r = med(name, "rps")
        if r is None:
            continue
        out.append(
            f"| {name} | {f(r)} | {r / ng:.2f} | {f(med(name, 'p50_ms'), 3)} | "
            f"{f(med(name, 'p99_ms'), 3)} | {f(med(name, 'server_cores'), 2)} | "
            f"{f(med(name, 'non2xx3xx'))} | {target} |")
    n = len(runs.get("nginx-return200", []))
    out.append(f"\n{n} interleaved rounds; machine idle before each run: "
               + ", ".join(kv.get("idle_before_pct", "?") + "%" for kv in runs.get("nginx-return200", [])) + ".\n")

# --- scale ---------------------------------------------------------------------------
sizes = sorted({int(k.split("-")[1]) for k in runs if k.startswith("scale-") and k.endswith("-auth-verify")})
if sizes:
    out.append("### Flat at scale (GET /auth/verify, a different token per request, all cached)\n")
    out.append("| stored tokens | req/s | p99 ms | /me req/s | /me p99 ms | RSS start → warm (MB) | bytes per cached grant |")
    out.append("|---|---|---|---|---|---|---|")
    for n in sizes:
        m = runs.get(f"scale-{n}-memory", [{}])[-1]
        rs = lambda k: f"{float(m[k]) / 1024:.0f}" if k in m else "—"
        out.append(
            f"| {n:,} | {f(med(f'scale-{n}-auth-verify', 'rps'))} | {f(med(f'scale-{n}-auth-verify', 'p99_ms'), 3)} | "
            f"{f(med(f'scale-{n}-me', 'rps'))} | {f(med(f'scale-{n}-me', 'p99_ms'), 3)} | "
            f"{rs('rss_start_kb')} → {rs('rss_warm_kb')} | {m.get('bytes_per_grant', '—')} |")
    lo, hi = sizes[0], sizes[-1]
    a, b = med(f"scale-{lo}-auth-verify", "rps"), med(f"scale-{hi}-auth-verify", "rps")
    pa, pb = med(f"scale-{lo}-auth-verify", "p99_ms"), med(f"scale-{hi}-auth-verify", "p99_ms")
    if a and b and pa and pb:
        out.append(f"\nThroughput {lo:,} → {hi:,}: ×{a / b:.2f} slower; p99 ×{pb / pa:.2f} (target: both within 1.2×).\n")

# --- cold verify, memory, single flight --------------------------------------------------
for name in ["cold_verify", "grant_memory", "single_flight", "bulk_load"]:
    for kv in runs.get(name, [])[-1:]:
        out.append(f"- `{name}`: " + ", ".join(f"{k}={v}" for k, v in kv.items() if k != "name"))
out.append("")

# --- flood ---------------------------------------------------------------------------
a = med("flood-A-valid-beside-valid", "rps")
b = med("flood-B-valid-beside-flood", "rps")
if a and b:
    out.append("### Invalid-token flood\n")
    out.append("| run | valid stream req/s | p99 ms | second stream req/s |")
    out.append("|---|---|---|---|")
    out.append(f"| A: valid beside valid | {f(a)} | {f(med('flood-A-valid-beside-valid', 'p99_ms'), 3)} | {f(med('flood-A-second-stream', 'rps'))} |")
    out.append(f"| B: valid beside flood | {f(b)} | {f(med('flood-B-valid-beside-flood', 'p99_ms'), 3)} | {f(med('flood-B-flood-stream', 'rps'))} (invalid) |")
    out.append(f"\nValid traffic under the flood: ×{b / a:.2f} of its rate beside valid traffic (target ≥ 0.90).")
    for kv in runs.get("flood-B-store", []):
        out.append(f"- round {kv.get('round')}: {kv.get('distinct_unknown')} distinct unknown tokens → "
                   f"{kv.get('store_reads')} store reads, {kv.get('negative_hits')} negative-cache hits, "
                   f"{kv.get('bad_format')} checksum rejections")
    out.append("")

# --- issuance, startup ----------------------------------------------------------------
r = med("issuance-sqlite", "rps")
if r:
    out.append(f"### Issuance\n\n{f(r)} tokens/s through the API on SQLite (p99 {f(med('issuance-sqlite', 'p99_ms'), 2)} ms, "
               f"non-2xx {f(med('issuance-sqlite', 'non2xx3xx'))}); target ≥ 2,000/s.\n")
for kind in ["empty", "existing"]:
    r = med(f"startup-{kind}", "ready_ms")
    if r:
        out.append(f"- start to /readyz, {kind} data dir: median {r:.0f} ms "
                   f"(runs: {', '.join(kv['ready_ms'] for kv in runs[f'startup-{kind}'])}); idle RSS median "
                   f"{med(f'startup-{kind}', 'idle_rss_kb') / 1024:.1f} MB")

# --- peers -----------------------------------------------------------------------------
peers = [k for k in runs if k.startswith("peer-") and k not in ("peer-latchkey-auth-verify", "peer-latchkey-me", "peer-nginx-return200")]
lk = med("peer-latchkey-auth-verify", "rps")
if lk and peers:
    out.append("\n### Peers (same session, wrk -t2 -c32)\n")
    out.append("| endpoint | req/s | p99 ms | Latchkey /auth/verify ÷ this |")
    out.append("|---|---|---|---|")
    for k in ["peer-nginx-return200", "peer-latchkey-auth-verify", "peer-latchkey-me"] + sorted(peers):
        r = med(k, "rps")
        if r is None:
            st = runs[k][-1].get("status", "")
            out.append(f"| {k[5:]} | {st} | | |")
            continue
        out.append(f"| {k[5:]} | {f(r)} | {f(med(k, 'p99_ms'), 1)} | {lk / r:.1f}× |")

print("\n".join(out))
