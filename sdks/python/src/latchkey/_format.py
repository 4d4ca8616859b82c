"""Latchkey's token format (DESIGN.md §2), checked offline.

``<prefix>_<32 random base62 chars><6 base62 chars of CRC32 over the first 32>``; prefixes
``lkp`` personal, ``lkl`` legacy, ``lkc`` client, ``lkf`` frontend, ``lka`` admin. The
checksum is zlib's CRC32 of the 32 random ASCII characters, in base62 with the alphabet
``0-9A-Za-z``, most significant digit first, left-padded with ``0`` to 6.
"""

from __future__ import annotations

import re
import zlib
from typing import Optional

__all__ = ["TOKEN_PATTERN", "is_well_formed", "token_type_of", "hint_of"]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PREFIXES = {
    "lkp": "personal",
    "lkl": "legacy",
    "lkc": "client",
    "lkf": "frontend",
    "lka": "admin",
}

#: A regular expression matching Latchkey API tokens (for secret scanners and logs).
TOKEN_PATTERN = re.compile(r"\blk[plcfa]_[0-9A-Za-z]{38}\b")

_SHAPE = re.compile(r"^(lk[plcfa])_([0-9A-Za-z]{32})([0-9A-Za-z]{6})$")


def checksum(body: str) -> str:
    """The 6-character base62 CRC32 checksum of a token's 32 random characters."""
    n = zlib.crc32(body.encode("ascii"))
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _ALPHABET[r] + out
    return out.rjust(6, "0")


def is_well_formed(token: str) -> bool:
    """Whether ``token`` has a Latchkey API token's shape and a correct checksum.

    This catches typos and made-up strings without a request; it does not say the token
    exists or works (use ``client.verify``)."""
    m = _SHAPE.match(token or "")
    return m is not None and checksum(m.group(2)) == m.group(3)


def token_type_of(token: str) -> Optional[str]:
    """The token type a token's prefix names (``"personal"``, ...), or ``None``."""
    return _PREFIXES.get((token or "")[:3]) if (token or "")[3:4] == "_" else None


def hint_of(secret: Optional[str]) -> str:
    """A display hint for a secret, as the server's lists show it (``lkp_…a1B2``)."""
    if not secret:
        return "<none>"
    prefix = secret.split("_", 1)[0] if "_" in secret[:4] else ""
    if prefix in _PREFIXES and len(secret) > 12:
        return f"{prefix}_…{secret[-4:]}"
    return "<redacted>"
