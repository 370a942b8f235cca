"""Releases: `tinypipe release` (bundle), its reproducible archives (archive) and the model card (card).

A layer below the CLI: it may import report, engine, stages, config and core, and nothing imports it but the CLI.
"""
