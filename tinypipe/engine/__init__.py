"""The engine: the expanded config as a DAG of stage tasks, the content-addressed store, the lock file."""
