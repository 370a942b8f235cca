"""The TFLM source tree: locate it, choose one build's sources and flags.

Not a stage (no STAGE). Shared by `tflm_lib` (the library) and `codegen_tflm` (the per-model shim). The rules
for which files make one build and which flags they need are those verified in the tree's PROVENANCE.md:
one kernel set (reference or cmsis_nn), one platform variant (cortex_m_generic's debug log with a callback;
the portable micro_time, since QEMU has no DWT cycle counter). The CPU flags come from `toolchain.flags`; the
objects are compiled through `toolchain.objects` (cached by content in the user-level cache).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from tinypipe.core.errors import UserError
from tinypipe.toolchain.flags import gcc_flags

if TYPE_CHECKING:
    from tinypipe.config.schema import Variant

ENV_PATH = "TINYPIPE_TFLM_PATH"
KERNEL_SETS = ("reference", "cmsis_nn")
DEFAULT_KERNELS = "cmsis_nn"
# `model_ops`: TFLM's core plus the kernels of the model's ops; `full`: every kernel (any model links against it)
LIBRARY_MODES = ("model_ops", "full")
DEFAULT_LIBRARY = "model_ops"
OPT_LEVEL = "-O2"  # TFLM builds its kernels at -O2; one level for everything keeps one object per source

MICRO = "tensorflow/lite/micro"
KERNELS_DIR = f"{MICRO}/kernels"
CMSIS_KERNELS_DIR = f"{KERNELS_DIR}/cmsis_nn"
CMSIS_NN_SOURCES = "third_party/cmsis_nn/Source"
# the platform variant we do not compile (PROVENANCE.md: "Two platform variants are present; compile one")
NOT_COMPILED = frozenset({f"{MICRO}/debug_log.cc", f"{MICRO}/cortex_m_generic/micro_time.cc"})
# test-only files an upstream checkout carries; the shared tree already leaves them out
TEST_ONLY_NAMES = frozenset({"test_helpers.cc", "test_helper_custom_ops.cc", "mock_micro_graph.cc",
                             "fake_micro_context.cc", "kernel_runner.cc"})
# the other optimized kernel directories of an upstream checkout (only cmsis_nn is ours)
OTHER_OPTIMIZED = ("arc_mli", "ceva", "ethos_u", "xtensa", "riscv_vector", "hexagon")

INCLUDE_DIRS = (".", "third_party/flatbuffers/include", "third_party/gemmlowp", "third_party/ruy")
CMSIS_NN_INCLUDE_DIRS = ("third_party/cmsis_nn", "third_party/cmsis_nn/Include")
DEFINES = ("-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON", "-DTF_LITE_MCU_DEBUG_LOG",
           "-DKERNELS_OPTIMIZED_FOR_SPEED", "-DFLATBUFFERS_LOCALE_INDEPENDENT=0", "-DFLATBUFFERS_PREFER_PRINTF=1")
CMSIS_NN_DEFINES = ("-DCMSIS_NN", "-DARM_NN_ENABLE_F16=0", "-DARM_NN_ENABLE_F32=0")
COMMON_FLAGS = ("-ffunction-sections", "-fdata-sections", "-funsigned-char", "-fno-unwind-tables",
                "-fno-asynchronous-unwind-tables", OPT_LEVEL)
CXX_FLAGS = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics")
C_FLAGS = ("-std=c17",)

SOURCE_HINT = (f"set `tflm: {{path: DIR}}` in project.yaml or the environment variable {ENV_PATH} to a TFLM "
               "source tree in create_tflm_tree.py layout (tensorflow/, third_party/flatbuffers, …)")


# --- settings and the source tree ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    path: str | None
    kernels: str
    library: str
    arena_bytes: int | None


def settings(variant: "Variant") -> Settings:
    """The project's `tflm:` section, from the variant's validated JSON config when it has one (stage keys are
    computed on every no-op run, which must not need pydantic), else from the typed project."""
    config = getattr(variant, "config", None)
    if isinstance(config, dict):
        section = config.get("tflm") or {}
    else:
        typed = getattr(variant.project, "tflm", None)
        section = typed.model_dump() if typed is not None else {}
    kernels = section.get("kernels") or DEFAULT_KERNELS
    if kernels not in KERNEL_SETS:
        raise UserError(f"tflm.kernels: unknown kernel set {kernels!r}", f"choose one of {', '.join(KERNEL_SETS)}")
    library = section.get("library") or DEFAULT_LIBRARY
    if library not in LIBRARY_MODES:
        raise UserError(f"tflm.library: unknown library mode {library!r}", f"choose one of {', '.join(LIBRARY_MODES)}")
    return Settings(path=section.get("path"), kernels=kernels, library=library,
                    arena_bytes=section.get("arena_bytes"))


def locate_source(variant: "Variant", project_dir: Path | None = None) -> Path | None:
    """The TFLM tree from `tflm.path` (relative to the project directory) or $TINYPIPE_TFLM_PATH; None if unset.

    The project directory is the variant's; else `project_dir`; else the current directory.
    """
    given = settings(variant).path or os.environ.get(ENV_PATH)
    if not given:
        return None
    path = Path(given).expanduser()
    if not path.is_absolute():
        path = (getattr(variant, "project_dir", None) or project_dir or Path.cwd()) / path
    return path.resolve()


def is_tflm_tree(root: Path) -> bool:
    """Whether `root` holds TFLM's marker file (checked before anything in it is walked or hashed)."""
    return (root / MICRO / "micro_interpreter.h").is_file()


def require_source(variant: "Variant", project_dir: Path | None = None) -> Path:
    root = locate_source(variant, project_dir)
    if root is None:
        raise UserError("engine tflm needs the TensorFlow Lite Micro source tree, and none is configured",
                        SOURCE_HINT)
    if not is_tflm_tree(root):
        raise UserError(f"{root} is not a TFLM source tree (no {MICRO}/micro_interpreter.h)", SOURCE_HINT)
    return root


def source_identity(root: Path | None) -> str | None:
    """A cheap fingerprint of the tree (computed on every no-op run): PROVENANCE.md's bytes plus every file's
    path, size and mtime. Object files are keyed by content separately, so a touched file costs a re-archive."""
    if root is None or not is_tflm_tree(root):
        return None  # never walk what is not a TFLM tree (`tflm.path: /` would walk the whole filesystem)
    h = hashlib.sha256()
    provenance = root / "PROVENANCE.md"
    if provenance.is_file():
        h.update(provenance.read_bytes())
    stack = [root]
    entries = []
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file():
                    st = entry.stat()
                    entries.append(f"{os.path.relpath(entry.path, root)}\0{st.st_size}\0{st.st_mtime_ns}")
    h.update("\n".join(sorted(entries)).encode())
    return h.hexdigest()


def library_sources(root: Path, kernels: str, only_kernels: Iterable[str] | None = None) -> list[str]:
    """Relative paths of one build's sources: every library `.cc` under tensorflow/ with one kernel set and one
    platform variant, plus CMSIS-NN's C sources for `cmsis_nn`.

    `only_kernels` (kernel file stems such as "fully_connected", "kernel_util"; see `kernel_files_for_ops`)
    restricts the files in `tensorflow/lite/micro/kernels` (and its cmsis_nn/) to those; the default compiles
    them all, which is what a library for any model needs. CMSIS-NN's C sources are always all compiled: the
    113 of them take seconds, and which ones a kernel calls is only known to the linker.
    """
    cmsis_overrides = {p.stem for p in (root / CMSIS_KERNELS_DIR).glob("*.cc")} if kernels == "cmsis_nn" else set()
    wanted = None if only_kernels is None else set(only_kernels)
    sources = []
    for path in sorted((root / "tensorflow").rglob("*.cc")):
        rel = path.relative_to(root).as_posix()
        if rel in NOT_COMPILED or path.name in TEST_ONLY_NAMES or rel.endswith("_test.cc"):
            continue
        parent = path.parent.relative_to(root).as_posix()
        if parent.startswith(f"{MICRO}/") and parent.split("/")[3] in {"examples", "tools", "python", "docs",
                                                                        "integration_tests", "testing"}:
            continue
        if parent == CMSIS_KERNELS_DIR:
            if kernels != "cmsis_nn":
                continue
        elif parent == KERNELS_DIR:
            if path.stem in cmsis_overrides:
                continue
        elif parent.startswith(f"{KERNELS_DIR}/"):
            continue  # another vendor's optimized kernels, or kernel tests
        if parent in (KERNELS_DIR, CMSIS_KERNELS_DIR) and wanted is not None and path.stem not in wanted:
            continue
        sources.append(rel)
    if kernels == "cmsis_nn":
        sources += sorted(p.relative_to(root).as_posix() for p in (root / CMSIS_NN_SOURCES).rglob("*.c"))
    return sources


# --- ops and the kernel files that implement them -------------------------------------------------------------

RESOLVER_HEADER = f"{MICRO}/micro_mutable_op_resolver.h"
KERNEL_INCLUDE = re.compile(r'#include\s+"tensorflow/lite/micro/kernels/(\w+)\.h"')


def _resolver_text(root: Path) -> str:
    return (root / RESOLVER_HEADER).read_text()


def resolver_methods(root: Path) -> dict[str, str]:
    """Op name (builtin name or custom code) -> the MicroMutableOpResolver method registering it, read from the
    tree's own header so the set always matches the TFLM in use."""
    text = _resolver_text(root)
    params = r"\(((?:[^()]|\([^()]*\))*)\)"  # a parameter list, default arguments' calls included
    methods = {}
    for name, args, op in re.findall(rf"TfLiteStatus (Add\w+){params}\s*\{{\s*return\s+AddBuiltin\(\s*"
                                     r"BuiltinOperator_(\w+)", text, re.S):
        if not args.strip() or "=" in args:
            methods[op] = name
    for name, args, op, register in re.findall(rf"TfLiteStatus (Add\w+){params}\s*\{{\s*return\s+AddCustom\(\s*"
                                               r"\"(\w+)\",\s*([\w:]+)", text, re.S):
        if not args.strip() and "tflm_signal" not in register:  # the signal library is not part of the build
            methods[op] = name
    return methods


def model_ops(model) -> list[str]:
    """Every op the model uses, by name (custom ops by their custom code), sorted."""
    return sorted({op.custom_code if op.op == "CUSTOM" else op.op for sg in model.subgraphs for op in sg.operators})


def check_supported(ops: list[str], methods: dict[str, str]) -> None:
    unsupported = [op for op in ops if op not in methods]
    if unsupported:
        raise UserError(f"model.tflite uses {', '.join(unsupported)}, which this TFLM cannot run "
                        f"(its op resolver has no Add method for {'it' if len(unsupported) == 1 else 'them'})",
                        "use engine native, or change the model to use ops TFLM supports")


def method_registrations(root: Path) -> dict[str, set[str]]:
    """Resolver method -> the `Register_*` functions its declaration and body name (the kernels it links in)."""
    text = _resolver_text(root)
    starts = [(m.start(), m.group(1)) for m in re.finditer(r"TfLiteStatus (Add\w+)\(", text)]
    registrations = {}
    for (start, name), (end, _) in zip(starts, starts[1:] + [(len(text), "")]):
        registrations[name] = set(re.findall(r"\b(Register_\w+)\s*\(", text[start:end]))
    return registrations


def kernel_files_for_ops(root: Path, kernels: str, ops: Iterable[str]) -> list[str]:
    """Kernel file stems (as `library_sources(only_kernels=…)` takes them) that a library for `ops` needs.

    From the tree itself, no table of ours: the resolver header names each op's `Register_*` functions; the kernel
    file of this kernel set that defines one is an op file. Helper files (no `Register_*` definition, such as
    conv_common.cc or kernel_util.cc) implement a kernel header whose name starts theirs (conv.h, kernel_util.h):
    a helper is taken when a chosen file — or TFLM's core, which includes decompress.h — includes its header,
    directly or through other kernel headers; repeated until nothing new is added.
    """
    ops = sorted(set(ops))
    methods = resolver_methods(root)
    check_supported(ops, methods)
    registrations = method_registrations(root)
    wanted = set().union(*(registrations.get(methods[op], set()) for op in ops)) if ops else set()

    files = {Path(rel).stem: root / rel for rel in library_sources(root, kernels)
             if rel.rsplit("/", 1)[0] in (KERNELS_DIR, CMSIS_KERNELS_DIR)}
    texts = {stem: path.read_text(errors="replace") for stem, path in files.items()}
    defines = {stem: set(re.findall(r"^TFLMRegistration\*?\s+(Register_\w+)\s*\(\s*\)\s*\{", text, re.M))
               for stem, text in texts.items()}
    chosen = {stem for stem, names in defines.items() if names & wanted}
    missing = wanted - set().union(*defines.values())
    if missing:
        raise UserError(f"the TFLM tree at {root} defines no {', '.join(sorted(missing))} for the "
                        f"{kernels} kernels (needed by ops {', '.join(ops)})",
                        "use `tflm: {library: full}`, or a complete TFLM tree")
    helpers = {stem: set(KERNEL_INCLUDE.findall(text)) for stem, text in texts.items() if not defines[stem]}
    header_includes: dict[str, set[str]] = {}

    def kernel_headers(text: str) -> set[str]:
        seen, todo = set(), list(KERNEL_INCLUDE.findall(text))
        while todo:
            header = todo.pop()
            if header in seen:
                continue
            seen.add(header)
            if header not in header_includes:
                path = root / KERNELS_DIR / f"{header}.h"
                header_includes[header] = set(KERNEL_INCLUDE.findall(path.read_text())) if path.is_file() else set()
            todo.extend(header_includes[header])
        return seen

    core = [root / rel for rel in library_sources(root, kernels, only_kernels=())
            if rel.endswith(".cc") and rel.rsplit("/", 1)[0] not in (KERNELS_DIR, CMSIS_KERNELS_DIR)]
    needed_headers = set().union(*(kernel_headers(p.read_text(errors="replace")) for p in core))
    todo = sorted(chosen)
    while True:
        for stem in todo:
            needed_headers |= kernel_headers(texts[stem])
        todo = sorted(stem for stem, own in helpers.items() if stem not in chosen
                      and any(h in needed_headers and stem.startswith(h) for h in own))
        if not todo:
            return sorted(chosen)
        chosen.update(todo)


# --- flags ------------------------------------------------------------------------------------------------------

def compile_flags(variant: "Variant", kernels: str, root: str = ".") -> dict[str, list[str]]:
    """{"c++": [...], "c": [...]}: everything after the compiler's name except `-c SRC -o OBJ`.

    Include directories are relative to `root` ("." when compiling in the tree, its path from elsewhere).
    """
    includes = list(INCLUDE_DIRS) + (list(CMSIS_NN_INCLUDE_DIRS) if kernels == "cmsis_nn" else [])
    include_flags = [f"-I{d}" if root == "." else f"-I{os.path.normpath(os.path.join(root, d))}" for d in includes]
    defines = list(DEFINES) + (list(CMSIS_NN_DEFINES) if kernels == "cmsis_nn" else [])
    common = gcc_flags(variant) + list(COMMON_FLAGS) + defines + include_flags
    return {"c++": list(CXX_FLAGS) + common, "c": list(C_FLAGS) + common}
