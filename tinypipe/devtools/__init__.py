"""Tools for tinypipe's own tests and benchmarks (not used by a pipeline run)."""
