"""The synchronous client (the source ``scripts/gen_sync.py`` writes ``_sync`` from)."""
