#!/usr/bin/env python3
"""A/B of the in-process verifier benchmarks between two builds, interleaved.

    bench/ab.py BASE_EXE HEAD_EXE [ROUNDS] [FILTER...]

BASE_EXE and HEAD_EXE are criterion bench executables of `--bench verifier`, built from two
commits (`cargo bench -p latchkey-server --bench verifier --no-run` prints the path). Each
round runs every filter on A, then on B, then on B, then on A (ABBA, so a drift of the
machine's load during a round weighs on both sides alike); the figure per side is the
median over rounds of criterion's median estimate. Prints a Markdown table and
`RESULT ab name=… base_ns=… head_ns=… ratio=…` lines. Only benchmarks both builds have
are compared; HEAD-only ones (e.g. `policy/*`) are listed with their time alone.
"""

import re
import statistics
import subprocess
import sys

TIME = re.compile(r"^(\S+)\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", re.M)
UNITS = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}
DEFAULT_FILTERS = [
    "baseline/hmac_sha256$",
    "verify/hit$",
    "verify/hit_sync$",
    "verify/authenticate_token_hit$",
    "router/auth_verify$",
    "router/me$",
    "policy/",
    "router/auth_verify_client_",
]


def run(exe: str, flt: str) -> dict[str, float]:
    out = subprocess.run(
        [exe, "--bench", flt, "--noplot", "--warm-up-time", "1", "--measurement-time", "3"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    # criterion prints "name\n   time: [..]" when the name is long and "name time: [..]"
    # otherwise; join the two forms.
    out = re.sub(r"^(\S+)\n\s+time:", r"\1 time:", out, flags=re.M)
    return {m[1]: float(m[2]) * UNITS[m[3]] for m in TIME.finditer(out)}


def main() -> None:
    base, head = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    filters = sys.argv[4:] or DEFAULT_FILTERS
    samples: dict[str, dict[str, list[float]]] = {"base": {}, "head": {}}
    for r in range(rounds):
        for flt in filters:
            for side in ("base", "head", "head", "base"):
                exe = base if side == "base" else head
                for name, ns in run(exe, flt).items():
                    samples[side].setdefault(name, []).append(ns)
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    hmac = {s: statistics.median(samples[s].get("baseline/hmac_sha256", [0.0])) for s in samples}
    print("| bench | base ns | head ns | head × base | head × HMAC (same build) |")
    print("|---|---|---|---|---|")
    for name in sorted(set(samples["base"]) | set(samples["head"])):
        b = samples["base"].get(name)
        h = samples["head"].get(name)
        bm = statistics.median(b) if b else None
        hm = statistics.median(h) if h else None
        ratio = f"{hm / bm:.3f}" if bm and hm else "—"
        vs_hmac = f"{hm / hmac['head']:.2f}" if hm and hmac["head"] else "—"
        print(
            f"| `{name}` | {f'{bm:.1f}' if bm else '—'} | {f'{hm:.1f}' if hm else '—'} "
            f"| {ratio} | {vs_hmac} |"
        )
        print(
            f"RESULT ab name={name} base_ns={bm or ''} head_ns={hm or ''} ratio={ratio}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
