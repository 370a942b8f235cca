"""The engine interface: what an inference engine adds to the pipeline.

Every pipeline runs the generic stages `data train quantize reference` (the model and its oracle), then the
engine's stages, then `toolchain firmware build run`. An engine's stages must end with one in the `codegen`
role: its output directory is the firmware contract (firmware-template/README.md) — `model.rs` exposing
`Input`, `Output`, `INPUT_LEN`, `OUTPUT_LEN`, `init`, `invoke` and `input_from_real`, `codegen.json` with at
least `arena_bytes`, `input` and `output`, and optionally `link.json` (archives and libraries to link) and the
files `model.rs` includes. Stage modules are named by dotted path and imported only when a graph is built.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Engine:
    name: str
    description: str
    # (role, stage module) in order; the last one fills the `codegen` role
    stages: tuple[tuple[str, str], ...]
    # external tools its stages run, beyond the firmware build's (for `doctor` and error hints)
    tools: tuple[str, ...] = ()
    # files its codegen output holds besides model.rs and codegen.json (documentation for users and tests)
    outputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.stages or self.stages[-1][0] != "codegen":
            raise ValueError(f"engine {self.name}: its last stage must fill the codegen role")
