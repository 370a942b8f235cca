"""`.tinypipe/out/<variant>/`: stable paths to the current artifacts, like cargo's `target/`.

Each name is a relative symlink into the store entry of the stage that wrote it, so the project can move. After a
run every link of a stage in the variant's graph is brought up to date: pointed at the stage's entry when it has
one, removed when it has none (it failed: the old file is not current); a stage outside the graph (`--until`)
keeps its links. Each link is replaced atomically (a temporary symlink renamed over it) and only when its target
changed, so a no-op run rewrites nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from tinypipe.engine.graph import Graph

OUT_DIR = "out"
# stage -> the files of its entry that get a stable path (the link has the file's name)
LINKS: dict[str, tuple[str, ...]] = {
    "codegen": ("model.rs",),
    "build": ("firmware.elf", "firmware.bin", "firmware.hex", "size.json"),
    "run": ("run.json",),
}


def variant_dir(state_dir: Path, variant: str) -> Path:
    return Path(state_dir) / OUT_DIR / variant


def stable_paths(state_dir: Path, variant: str, stage: str, entry: Path) -> list[Path]:
    """The stable paths of (variant, stage) that point into `entry` (its current store entry)."""
    where = variant_dir(state_dir, variant)
    return [where / name for name in LINKS.get(stage, ())
            if (where / name).is_symlink() and (where / name).resolve() == (entry / name).resolve()]


def update(state_dir: Path, graph: Graph) -> None:
    for variant, nodes in graph.by_variant.items():
        where = str(variant_dir(state_dir, variant))  # strings: a sweep has thousands of links to check
        for stage, names in LINKS.items():
            node = nodes.get(stage)
            if node is None:
                continue
            entry = str(node.entry_dir()) if node.meta() is not None else None
            for name in names:
                link = os.path.join(where, name)
                if entry is None or not os.path.isfile(os.path.join(entry, name)):
                    if os.path.islink(link):
                        os.unlink(link)
                    continue
                target = os.path.relpath(os.path.join(entry, name), where)
                try:
                    if os.readlink(link) == target:
                        continue
                except OSError:
                    pass
                os.makedirs(where, exist_ok=True)
                tmp = os.path.join(where, f".{name}.tmp-{os.getpid()}")
                if os.path.islink(tmp):
                    os.unlink(tmp)
                os.symlink(target, tmp)
                os.replace(tmp, link)
