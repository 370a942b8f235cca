"""The TFLM source tree: locate it, choose one build's sources and flags, compile them through an object cache.

Not a stage (no STAGE). Shared by `tflm_lib` (the library) and `codegen_tflm` (the per-model shim). The rules
for which files make one build and which flags they need are those verified in the tree's PROVENANCE.md:
one kernel set (reference or cmsis_nn), one platform variant (cortex_m_generic's debug log with a callback;
the portable micro_time, since QEMU has no DWT cycle counter).

Objects are cached by content in the user-level cache, ccache-style: the key is the compiler, the flags and
the source's bytes; a hit also needs every header the last compile read (from its `-MD` list) to be unchanged.
So editing one kernel recompiles that kernel, and editing a header recompiles exactly its includers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from tinypipe.core import proc
from tinypipe.core.errors import UserError
from tinypipe.core.hashing import sha256_file, sha256_json
from tinypipe.core.paths import user_cache_dir

if TYPE_CHECKING:
    from tinypipe.config.schema import Variant

ENV_PATH = "TINYPIPE_TFLM_PATH"
KERNEL_SETS = ("reference", "cmsis_nn")
DEFAULT_KERNELS = "cmsis_nn"
# `model_ops`: TFLM's core plus the kernels of the model's ops; `full`: every kernel (any model links against it)
LIBRARY_MODES = ("model_ops", "full")
DEFAULT_LIBRARY = "model_ops"
CXX = "arm-none-eabi-g++"
CC = "arm-none-eabi-gcc"
AR = "arm-none-eabi-ar"
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

# gcc's -mfpu for the hard-float cores we know (the Rust `eabihf` targets pass floats in FPU registers)
FPU_FOR_CPU = {"cortex-m4": "fpv4-sp-d16", "cortex-m7": "fpv5-d16", "cortex-m33": "fpv5-sp-d16",
               "cortex-m35p": "fpv5-sp-d16"}

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


def require_source(variant: "Variant", project_dir: Path | None = None) -> Path:
    root = locate_source(variant, project_dir)
    if root is None:
        raise UserError("engine tflm needs the TensorFlow Lite Micro source tree, and none is configured",
                        SOURCE_HINT)
    if not (root / MICRO / "micro_interpreter.h").is_file():
        raise UserError(f"{root} is not a TFLM source tree (no {MICRO}/micro_interpreter.h)", SOURCE_HINT)
    return root


def source_identity(root: Path | None) -> str | None:
    """A cheap fingerprint of the tree (computed on every no-op run): PROVENANCE.md's bytes plus every file's
    path, size and mtime. Object files are keyed by content separately, so a touched file costs a re-archive."""
    if root is None or not root.is_dir():
        return None
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

def float_abi(variant: "Variant") -> str:
    return "hard" if variant.triple.endswith("eabihf") else "soft"


def cpu_flags(variant: "Variant") -> list[str]:
    """gcc's CPU and float-ABI flags matching the Rust target triple (they must agree to link)."""
    flags = [f"-mcpu={variant.cpu}", "-mthumb"]
    if float_abi(variant) == "hard":
        fpu = FPU_FOR_CPU.get(variant.cpu)
        if fpu is None:
            raise UserError(f"target {variant.triple} is hard-float but tinypipe knows no FPU for cpu {variant.cpu!r}",
                            f"use one of {', '.join(FPU_FOR_CPU)} or a soft-float triple")
        flags += ["-mfloat-abi=hard", f"-mfpu={fpu}"]
    else:
        flags.append("-mfloat-abi=soft")
    return flags


def compile_flags(variant: "Variant", kernels: str, root: str = ".") -> dict[str, list[str]]:
    """{"c++": [...], "c": [...]}: everything after the compiler's name except `-c SRC -o OBJ`.

    Include directories are relative to `root` ("." when compiling in the tree, its path from elsewhere).
    """
    includes = list(INCLUDE_DIRS) + (list(CMSIS_NN_INCLUDE_DIRS) if kernels == "cmsis_nn" else [])
    include_flags = [f"-I{d}" if root == "." else f"-I{os.path.normpath(os.path.join(root, d))}" for d in includes]
    defines = list(DEFINES) + (list(CMSIS_NN_DEFINES) if kernels == "cmsis_nn" else [])
    common = cpu_flags(variant) + list(COMMON_FLAGS) + defines + include_flags
    return {"c++": list(CXX_FLAGS) + common, "c": list(C_FLAGS) + common}


@functools.lru_cache(maxsize=None)
def tool_version(tool: str) -> str:
    """First line of `TOOL --version` (cached per process: stage `tools` callables run on every no-op)."""
    out = proc.run([proc.which(tool), "--version"]).stdout
    return out.strip().splitlines()[0] if out.strip() else tool


# --- compiling through the object cache ----------------------------------------------------------------------

def object_cache_dir() -> Path:
    return user_cache_dir() / "tflm-objects"


@dataclass
class CompileStats:
    compiled: int = 0
    reused: int = 0


class ObjectCache:
    """Objects keyed by (compiler, flags, source bytes); a hit also needs the recorded headers unchanged."""

    def __init__(self, root: Path, cache_dir: Path | None = None):
        self.root = root
        self.dir = cache_dir or object_cache_dir()
        self._header_hashes: dict[str, str | None] = {}
        self._guard = threading.Lock()

    def _header_hash(self, rel: str) -> str | None:
        with self._guard:
            if rel in self._header_hashes:
                return self._header_hashes[rel]
        path = self.root / rel
        digest = sha256_file(path) if path.is_file() else None
        with self._guard:
            self._header_hashes[rel] = digest
        return digest

    def _entry(self, language: str, rel: str, flags: list[str]) -> Path:
        key = sha256_json({"compiler": tool_version(CXX if language == "c++" else CC), "language": language,
                           "flags": flags, "source": rel, "sha256": sha256_file(self.root / rel)})
        return self.dir / key[:2] / key

    def lookup(self, entry: Path) -> Path | None:
        if not entry.is_dir():
            return None
        for manifest in sorted(entry.glob("*.json")):
            try:
                headers = json.loads(manifest.read_text())
            except (OSError, ValueError):
                continue
            if all(self._header_hash(h) == digest for h, digest in headers.items()):
                obj = manifest.with_suffix(".o")
                if obj.is_file():
                    try:
                        os.utime(obj)  # last use, for `tinypipe gc --cache`
                    except OSError:
                        pass
                    return obj
        return None

    def compile(self, rel: str, flags: list[str]) -> tuple[Path, bool]:
        """(object path, whether it was compiled now). `rel` is relative to the tree root."""
        language = "c" if rel.endswith(".c") else "c++"
        entry = self._entry(language, rel, flags)
        hit = self.lookup(entry)
        if hit is not None:
            return hit, False
        entry.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=entry, prefix=".tmp-") as tmp:
            obj, deps = Path(tmp) / "out.o", Path(tmp) / "out.d"
            # cwd = the tree and a relative source path: __FILE__ strings, and so the objects, do not depend
            # on where the tree lives
            proc.run([CXX if language == "c++" else CC, *flags, "-MD", "-MF", deps, "-c", rel, "-o", obj],
                     cwd=self.root)
            headers = {h: self._header_hash(h) for h in _tree_headers(deps.read_text(), rel)}
            name = sha256_json(headers)[:16]
            os.replace(obj, entry / f"{name}.o")  # the object first: a manifest never points at nothing
            manifest_tmp = Path(tmp) / "manifest.json"
            manifest_tmp.write_text(json.dumps(headers, sort_keys=True))
            os.replace(manifest_tmp, entry / f"{name}.json")
        return entry / f"{name}.o", True


def _tree_headers(depfile: str, source: str) -> list[str]:
    """The headers from a make-style `-MD` file that live in the tree (relative paths; system ones are covered
    by the compiler version)."""
    body = depfile.replace("\\\n", " ").split(":", 1)[1] if ":" in depfile else ""
    return sorted({p for p in body.split() if not os.path.isabs(p) and p != source})


def compile_sources(root: Path, sources: list[str], flags: dict[str, list[str]], *,
                    jobs: int | None = None, progress: Callable[[int, int], None] | None = None,
                    cache: ObjectCache | None = None) -> tuple[list[tuple[str, Path]], CompileStats]:
    """Compile `sources` in parallel (one compiler process per job), returning (source, object) in source order."""
    import concurrent.futures

    cache = cache or ObjectCache(root)
    jobs = jobs or os.cpu_count() or 1
    stats = CompileStats()
    objects: dict[str, Path] = {}
    total = len(sources)
    if progress:
        progress(0, total)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(cache.compile, rel, flags["c" if rel.endswith(".c") else "c++"]): rel
                   for rel in sources}
        try:
            for future in concurrent.futures.as_completed(futures):
                obj, compiled = future.result()
                objects[futures[future]] = obj
                if compiled:
                    stats.compiled += 1
                else:
                    stats.reused += 1
                if progress:
                    progress(len(objects), total)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return [(rel, objects[rel]) for rel in sources], stats


def archive(objects: list[tuple[str, Path]], out: Path) -> None:
    """A deterministic static library (`ar rcsD`). Members are named after their source path, since several
    sources share a file name (kernel_util.cc, tensor_utils.cc, …) and `ar r` would replace one with the other."""
    with tempfile.TemporaryDirectory() as tmp:
        members = []
        for rel, obj in objects:
            member = Path(tmp) / (rel.replace("/", "_").rsplit(".", 1)[0] + ".o")
            shutil.copyfile(obj, member)
            members.append(member.name)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        proc.run([AR, "rcsD", out.resolve(), *members], cwd=tmp)
