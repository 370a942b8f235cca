"""What tinypipe hands a user beyond its own firmware: the model as a crate and a C library (`crate.py`, `capi.py`)."""
