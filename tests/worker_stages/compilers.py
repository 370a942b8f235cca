"""Stage `compilers`: a cargo build of a three-crate workspace, then four C files through the TFLM object compile,
each under the job slot its worker holds (the test wraps rustc and gcc to log when each one runs)."""

import os
import shutil
import tempfile
from pathlib import Path

from tinypipe.core import proc
from tinypipe.stages.base import Stage

CRATES = ("a", "b", "c")
STAGE = Stage(name="compilers", version="1", needs=(), config=lambda v: {"board": v.board.name})


def _workspace(root: Path, salt: str) -> None:
    root.mkdir()
    (root / "Cargo.toml").write_text(f'[workspace]\nmembers = {list(CRATES)!r}\nresolver = "2"\n'.replace("'", '"'))
    for crate in CRATES:
        (root / crate / "src").mkdir(parents=True)
        (root / crate / "Cargo.toml").write_text(f'[package]\nname = "{crate}"\nversion = "0.1.0"\n'
                                                 'edition = "2021"\n')
        (root / crate / "src" / "lib.rs").write_text(f"pub const SALT: &str = {salt!r};\n".replace("'", '"')
                                                     + "pub fn f(x: u64) -> u64 { x.rotate_left(7) ^ 0x9e37 }\n")


def run(ctx):
    from tinypipe.toolchain import objects

    cargo = "/usr/bin/cargo" if os.path.isfile("/usr/bin/cargo") else shutil.which("cargo")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _workspace(root / "ws", ctx.variant.board.name)
        proc.run([cargo, "build", "--release", "--offline"], cwd=root / "ws",
                 env={"RUSTC_WRAPPER": os.environ["TINYPIPE_TEST_RUSTC_WRAPPER"],
                      "CARGO_TARGET_DIR": str(root / "target"), "CARGO_HOME": str(root / "cargo-home")})
        sources = []
        for i in range(4):
            (root / f"s{i}.c").write_text(f'const char *board{i} = "{ctx.variant.board.name}";\n'
                                          f"int f{i}(int x) {{ return x * {i + 3}; }}\n")
            sources.append(f"s{i}.c")
        flags = ["-O2", "-mcpu=cortex-m4", "-mthumb"]
        cache = objects.ObjectCache(root, cache_dir=root / "objects")
        _, stats = objects.compile_sources(root, sources, {"c": flags, "c++": flags}, cache=cache)
    (ctx.out / "compiled.txt").write_text(f"{stats.compiled}\n")
    return {"compiled": stats.compiled}
