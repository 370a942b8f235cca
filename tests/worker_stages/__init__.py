"""Stand-in stages that run in real worker processes (`tests/test_jobs.py`): a module per stage, importable by
the workers. `compilers` starts real compilers (cargo/rustc, arm-none-eabi-gcc), `crash` kills its worker
with SIGSEGV in the cell `CRASH_BOARD`, `after` follows it."""
