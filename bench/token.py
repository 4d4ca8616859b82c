#!/usr/bin/env python3
"""Prints a fresh well-formed Latchkey token (DESIGN.md §2), personal unless a prefix is given."""
import secrets, sys, zlib

B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

def make(prefix="lkp"):
    random = "".join(secrets.choice(B62) for _ in range(32))
    crc = zlib.crc32(random.encode())
    digits = []
    for _ in range(6):
        digits.append(B62[crc % 62])
        crc //= 62
    return f"{prefix}_{random}{''.join(reversed(digits))}"

if __name__ == "__main__":
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    for _ in range(n):
        print(make(sys.argv[1] if len(sys.argv) > 1 else "lkp"))
