"""Presenting results: live progress, the final table, `--json`, budget checks."""
