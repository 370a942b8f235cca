import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TINYPIPE_SHARED", REPO.parent / "shared"))
GESTURE = REPO / "pipelines" / "gesture"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED} (set TINYPIPE_SHARED)")
    return SHARED


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """One user-level cache (Rust sysroots) for the whole session, outside the developer's real cache."""
    cache = os.environ.get("TINYPIPE_TEST_CACHE") or str(tmp_path_factory.mktemp("user-cache"))
    old = os.environ.get("TINYPIPE_CACHE")
    os.environ["TINYPIPE_CACHE"] = cache
    yield Path(cache)
    if old is None:
        os.environ.pop("TINYPIPE_CACHE", None)
    else:
        os.environ["TINYPIPE_CACHE"] = old


def standin_model_rs(input_len: int, output_len: int, body: str) -> str:
    """A hand-written `model.rs` for firmware tests: the engines' contract for int8 I/O (see
    firmware-template/README.md) with `INPUT_LEN`/`OUTPUT_LEN`, then `body` (which defines `invoke`)."""
    return ("pub type Input = i8;\npub type Output = i8;\n"
            "pub fn input_from_real(x: f32) -> Input {\n    x as i8\n}\n"
            "pub fn init() -> Result<(), &'static str> {\n    Ok(())\n}\n"
            f"pub const INPUT_LEN: usize = {input_len};\npub const OUTPUT_LEN: usize = {output_len};\n" + body)


def tinypipe_cmd() -> list[str]:
    return [sys.executable, "-m", "tinypipe"]


def print_timings(request, timings: dict[str, float], label: str) -> None:
    """Print timings a module measured, after its tests (tests report timings; they never assert them)."""
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is None or capture is None or not timings:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for name, seconds in timings.items():
            reporter.write_line(f"{label}: {name:<52} {seconds:6.1f} s")
