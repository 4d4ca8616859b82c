"""Keeps Latchkey secrets out of the HTTP libraries' debug logs.

httpcore's DEBUG trace prints response headers, so a sign-in's ``Set-Cookie`` (the session
secret) would reach a log line when an application turns DEBUG on everywhere. A filter on
httpx's and httpcore's loggers rewrites such records before any handler sees them: session
cookie values, Latchkey tokens and JWTs become ``<redacted>``. It only touches records that
hold one of them, and costs nothing while DEBUG is off (the records are never made).
"""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    re.compile(r"(latchkey_session=)[^;'\"\s]+"),
    re.compile(r"\blk[plcfas]_[0-9A-Za-z]{38}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"),
]

_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


def redact(text: str) -> str:
    """``text`` with Latchkey secrets replaced by ``<redacted>``."""
    text = _PATTERNS[0].sub(r"\1<redacted>", text)
    for pattern in _PATTERNS[1:]:
        text = pattern.sub("<redacted>", text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a log record whose message holds a Latchkey secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's business
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


def install() -> None:
    """Adds the filter to httpx's and httpcore's loggers (once)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
