"""The layering of DESIGN.md, checked on the import graph (Python's ast): imports point down only, generic
stages never import each other or an engine, engines never import each other, and only the engine registry
names an engine package."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tinypipe"

# lower number = lower layer; a module may import its own layer's peers (except where a rule below says not)
LAYERS = {"core": 0, "config": 1, "tflite": 1, "toolchain": 2, "runners": 2, "stages": 3, "engines": 3, "devtools": 6,
          "engine": 4, "report": 5, "release": 5.5, "cli": 6, "doctor": 6, "scaffold": 6, "__main__": 6, "__init__": 6}
STAGE_HELPERS = {"tinypipe.stages.base", "tinypipe.stages._ml", "tinypipe.stages._fit", "tinypipe.stages._recordings",
                 "tinypipe.stages._scaling", "tinypipe.stages._features", "tinypipe.stages._features.fixed",
                 "tinypipe.stages._features.spectral", "tinypipe.stages._features.mfcc",
                 "tinypipe.stages"}


def modules(package: Path) -> dict[str, Path]:
    out = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every tinypipe import, at any depth (function-level ones too)."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("tinypipe")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("tinypipe"):
            # `from tinypipe.x import y` may import the module tinypipe.x.y
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def resolve(target: str, known: dict[str, Path]) -> str:
    """The module an import refers to: the longest known module prefix."""
    while target not in known and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def layer(module: str) -> tuple[str, int]:
    top = module.split(".")[1] if module.count(".") >= 1 else "__init__"
    return top, LAYERS[top]


def violations(package: Path = PACKAGE) -> list[str]:
    known = modules(package)
    bad = []
    for name, path in sorted(known.items()):
        top, rank = layer(name) if name != "tinypipe" else ("__init__", 6)
        for line, raw in imports(name, path):
            target = resolve(raw, known)
            if target == "tinypipe" or target == name:
                continue
            t_top, t_rank = layer(target)
            where = f"{path.relative_to(package.parent)}:{line} imports {target}"
            if t_rank > rank:
                bad.append(f"{where}: upward ({top} -> {t_top})")
            if top == "stages" and t_top == "engines":
                bad.append(f"{where}: a generic stage imports an engine")
            if top == "stages" and t_top == "stages" and target not in STAGE_HELPERS and name not in STAGE_HELPERS:
                bad.append(f"{where}: a stage imports another stage module")
            if top == "engines" and t_top == "stages" and target not in STAGE_HELPERS - {"tinypipe.stages"}:
                bad.append(f"{where}: an engine imports a stage module (only stages.base and helpers)")
            for engine in ("native", "tflm"):
                engine_package = f"tinypipe.engines.{engine}"
                inside = name == engine_package or name.startswith(engine_package + ".")
                # devtools (the tests' and benchmarks' harness) measures one engine's code on purpose
                if (target == engine_package or target.startswith(engine_package + ".")) and not inside \
                        and top != "devtools":
                    bad.append(f"{where}: only the registry names an engine package (by string)")
    return bad


def test_imports_point_down_and_engines_stay_in_their_rooms():
    assert violations() == []


def test_the_check_catches_what_it_forbids(tmp_path):
    """The check is not vacuous: planted violations of each rule are reported."""
    fake = tmp_path / "tinypipe"
    for rel, text in {
        "__init__.py": "", "core/__init__.py": "", "core/x.py": "from tinypipe.engine import store\n",
        "engine/__init__.py": "", "engine/store.py": "", "stages/__init__.py": "", "stages/base.py": "",
        "stages/data.py": "from tinypipe.stages import train\n", "stages/train.py": "import tinypipe.engines.native\n",
        "engines/__init__.py": "", "engines/native/__init__.py": "from tinypipe.engines.tflm import codegen\n",
        "engines/tflm/__init__.py": "", "engines/tflm/codegen.py": "from tinypipe.stages import data\n",
    }.items():
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text(text)
    found = "\n".join(violations(fake))
    assert "upward (core -> engine)" in found
    assert "a stage imports another stage module" in found
    assert "a generic stage imports an engine" in found
    assert "only the registry names an engine package" in found
    assert "an engine imports a stage module" in found
