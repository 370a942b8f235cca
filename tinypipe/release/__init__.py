"""What tinypipe hands a user beyond a run: `tinypipe release` (bundle), its reproducible archives (archive) and
the model card (card); the model as a crate and a C library for the user's own firmware (crate, capi).

A layer below the CLI: it may import report, engine, stages, config and core, and nothing imports it but the CLI.
"""
