"""Package data (label sets)."""
