"""Ingest stage: reading domain lists (I/O) and normalising names (pure)."""
