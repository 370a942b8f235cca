"""Session fixtures, one per expensive concept: the shared files, the user-level cache, the Rust toolchain entry
(sysroot) per target, the host TFLM oracle; and the rule that marks a test `slow` by the fixtures it needs.
Helpers that are not fixtures live in tests/helpers.py."""

import hashlib
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import SHARED, TracingMicroModel, native_variant, stage_context


# Fixtures that build something expensive (a Rust sysroot and firmware, a TFLM library, a trained model, the
# Keras test models, the host kernels program, the random layers TensorFlow converts): a test that needs one is
# `slow`, whichever module it is in.
SLOW_FIXTURES = {"rust_toolchain", "tflm_libs", "pipeline", "keras_models", "host_build", "gesture_releases",
                 "random_layers"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED} (set TINYPIPE_SHARED)")
    return SHARED


@contextmanager
def file_lock(path: Path):
    """An exclusive lock on `path` (created) for the block: one builder at a time across pytest-xdist workers."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """One user-level cache (Rust sysroots, compiled crates, TFLM objects, the shared store) for the whole
    session, outside the developer's real cache. Under pytest-xdist every worker uses the same one (in the
    session's base temporary directory, above the workers' own): the store and the object cache take
    concurrent writers, and what the fixtures build themselves is built under `file_lock`."""
    if os.environ.get("TINYPIPE_TEST_CACHE"):
        cache = os.environ["TINYPIPE_TEST_CACHE"]
    elif os.environ.get("PYTEST_XDIST_WORKER"):
        cache = str(tmp_path_factory.getbasetemp().parent / "user-cache")
        Path(cache).mkdir(exist_ok=True)
    else:
        cache = str(tmp_path_factory.mktemp("user-cache"))
    old = os.environ.get("TINYPIPE_CACHE")
    os.environ["TINYPIPE_CACHE"] = cache
    yield Path(cache)
    if old is None:
        os.environ.pop("TINYPIPE_CACHE", None)
    else:
        os.environ["TINYPIPE_CACHE"] = old


@pytest.fixture(scope="session")
def rust_toolchain(session_cache):
    """board -> the toolchain stage's output for the board's (triple, cpu): the Rust sysroot (`core`,
    `compiler_builtins`) built by the rustc `find_rust` picks, and the link flags. Built on first use, once per
    session (TINYPIPE_TEST_CACHE keeps it between sessions); the one way tests get a sysroot."""
    from tinypipe.core.errors import UserError
    from tinypipe.stages import toolchain
    from tinypipe.toolchain.rust import find_rust

    def entry(board: str) -> Path:
        variant = native_variant(board)
        try:
            release = find_rust(variant.triple).release
        except UserError as exc:
            pytest.skip(str(exc))
        out = session_cache / "toolchain-test" / f"{variant.triple}-{variant.cpu}-{release}"
        with file_lock(out.with_name(out.name + ".lock")):  # another worker may be building it
            if not (out / "toolchain.json").is_file():
                shutil.rmtree(out, ignore_errors=True)  # a killed session's partial entry
                toolchain.run(stage_context(variant, out))
        return out

    return entry


@pytest.fixture(scope="session")
def host_tflm():
    """The host TFLM oracle: (model bytes, trace=False) -> a MicroModel, one per model for the session;
    `trace=True` gives a TracingMicroModel, which keeps every tensor for per-operator comparisons."""
    pytest.importorskip("tflite_micro")
    from tinypipe.stages._ml import MicroModel

    models: dict[tuple[bytes, bool], MicroModel] = {}

    def get(model_bytes: bytes, trace: bool = False) -> MicroModel:
        key = (hashlib.sha256(model_bytes).digest(), trace)
        if key not in models:
            models[key] = (TracingMicroModel if trace else MicroModel)(model_bytes)
        return models[key]

    return get
