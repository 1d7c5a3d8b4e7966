"""Enrichment passes over an indexed library."""
