"""tinypipe: a declarative, reproducible build system for TinyML firmware in Rust."""

__version__ = "0.1.0"
