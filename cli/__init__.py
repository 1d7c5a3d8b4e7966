"""Typer commands: argument parsing, progress display and output formatting only."""
