"""Offline ingestion: scan a folder, decode and sample videos, encode them, store the results."""
