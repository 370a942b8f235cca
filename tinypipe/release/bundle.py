"""`tinypipe release`: run the pipeline against the lock, refuse on any failure, then write the bundle.

`DIR/dist/<name>-<version>/` (or `OUT/<name>-<version>/`) holds, per variant, the ELF, `.bin`, `.hex`, the
device results (`run.json`) and the generated sources as a tarball (`model.rs` and the rendered firmware
project); and once: `project.yaml`, `tinypipe.lock`, `MODEL_CARD.md`, `report.html`, `results.json` and
`SHA256SUMS` over all of them. Beside it, `<name>-<version>.tar.gz` holds the same directory with normalised
metadata (see `archive`). Nothing in a bundle depends on the project's directory, the time, the user or the
host, so two releases of the same project from two checkouts are byte-identical.

The files of a bundle are listed in one place, `bundle_members`; everything else only writes what it lists.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinypipe.core.errors import CheckFailed
from tinypipe.core.fs import atomic_write_bytes, read_json
from tinypipe.core.hashing import sha256_bytes, sha256_file
from tinypipe.engine.pipeline import Pipeline, Reporter, RunOutcome
from tinypipe.engine.why import lock_mismatches
from tinypipe.release.archive import Member, release_epoch, sha256sums, tar_gz
from tinypipe.release.card import model_card

DIST_DIR = "dist"
CHECKSUMS = "SHA256SUMS"
FIRMWARE_FILES = ("firmware.elf", "firmware.bin", "firmware.hex")


def release_name(pipeline: Pipeline) -> str:
    return f"{pipeline.config['name']}-{pipeline.config['version']}"


@dataclass
class Release:
    directory: Path
    tarball: Path
    tarball_sha256: str
    files: list[str]  # the bundle's files, relative to `directory`, SHA256SUMS last


def run_for_release(pipeline: Pipeline, reporter: Reporter | None = None, jobs: int = 1) -> RunOutcome:
    """Run every stage of every variant, held to the lock when the project has one (as `run --locked`): a lock
    that no longer matches the project refuses the release before anything is built. A project without a lock
    (a first release) runs normally and writes one."""
    locked = pipeline.lock.path.exists()
    if locked:
        problems = lock_mismatches(pipeline.graph, pipeline.lock)
        if problems:
            raise CheckFailed(
                f"cannot release {release_name(pipeline)}: {pipeline.lock.path.name} does not match the project, "
                "so the release would not be what the lock pins; nothing was built:\n"
                + "\n".join(f"  {p}" for p in problems)
                + f"\n  run `tinypipe run` to rebuild and update {pipeline.lock.path.name}, commit it, then release")
    return pipeline.run(reporter, jobs=jobs, locked=locked)


def release_blockers(rows: list[dict[str, Any]], checks: list[str]) -> list[str]:
    """Why these results may not be released: the failed checks and budgets, and any variant without a device
    verdict (a release ships only firmware that ran bit-exact)."""
    missing = [f"{r['variant']}: no result from the device (it did not run)" for r in rows if r["bit_exact"] is None]
    return list(checks) + missing


def _entry(pipeline: Pipeline, variant: str, stage: str) -> Path:
    return pipeline.graph.by_variant[variant][stage].entry_dir()


def _tree(root: Path, prefix: str) -> list[Member]:
    """Every file under `root` as archive members under `prefix/` (symlinks are not expected in an entry)."""
    return [Member(f"{prefix}/{p.relative_to(root).as_posix()}", p.read_bytes(), os.access(p, os.X_OK))
            for p in sorted(root.rglob("*")) if p.is_file()]


def variant_facts(pipeline: Pipeline, variant, row: dict[str, Any]) -> dict[str, Any]:
    """What the model card says about one variant, read from this run's stage outputs and the lock."""
    from tinypipe.stages._ml import model_source

    name = variant.name
    config = variant.config
    data_summary = pipeline.summary(name, "data") or {}
    train = pipeline.summary(name, "train") or {}
    run = pipeline.summary(name, "run") or {}
    quant = read_json(_entry(pipeline, name, "quantize") / "quant.json")
    tflite = _entry(pipeline, name, "quantize") / "model.tflite"
    source = model_source(variant)
    model = {**{k: config["model"][k] for k in ("layers", "softmax", "epochs", "batch_size", "learning_rate")},
             "seed": config["seed"], "path": config["model"]["path"], "file_sha256": source.sha256,
             "params": train.get("params"), "test_accuracy_float": train.get("test_accuracy_float")}
    return {
        "variant": name, "board": variant.board.name, "engine": variant.engine, "triple": variant.triple,
        "cpu": variant.cpu,
        "data": {"source": config["data"]["source"], "path": config["data"]["path"],
                 "classes": read_json(_entry(pipeline, name, "data") / "classes.json"),
                 "window": data_summary.get("window"), "axes": data_summary.get("axes") or [],
                 "counts": data_summary.get("counts") or {}, "output": pipeline.lock.entry(name, "data")["output"]},
        "model": model,
        "quantization": {**config["quantization"], "input": quant["input"], "output": quant["output"],
                         "ops": quant["ops"], "tflite_bytes": tflite.stat().st_size,
                         "tflite_sha256": sha256_file(tflite)},
        "results": {**row, **{k: run.get(k) for k in ("instructions_min", "instructions_max", "stack_bytes")}},
    }


def _variant_members(pipeline: Pipeline, variant, top: str, epoch: int) -> list[Member]:
    name = variant.name
    build = _entry(pipeline, name, "build")
    members = [Member(f"{top}/{name}/{f}", (build / f).read_bytes()) for f in FIRMWARE_FILES]
    members.append(Member(f"{top}/{name}/run.json", (_entry(pipeline, name, "run") / "run.json").read_bytes()))
    sources_root = f"{top}-{name}-sources"
    sources = [Member(f"{sources_root}/model.rs", (_entry(pipeline, name, "codegen") / "model.rs").read_bytes()),
               *_tree(_entry(pipeline, name, "firmware") / "project", f"{sources_root}/firmware")]
    members.append(Member(f"{top}/{name}/sources.tar.gz", tar_gz(sources, epoch)))
    if variant.engine == "native":  # the model for the user's own firmware (tflm variants: not exported yet)
        from tinypipe.release.crate import crate_name, crate_version, write_variant_crate

        with tempfile.TemporaryDirectory() as scratch:
            crate = Path(scratch) / "crate"
            write_variant_crate(crate, pipeline, variant, crate_name(pipeline.config["name"]),
                                crate_version(pipeline.config, pipeline.config_path))
            members += _tree(crate, f"{top}/{name}/crate")
    return members


def bundle_members(pipeline: Pipeline, rows: list[dict[str, Any]], epoch: int) -> list[Member]:
    """Every file of the bundle except SHA256SUMS, under `<name>-<version>/`: the one place a part is added."""
    from tinypipe.report.html import html_rows, render_html

    top = release_name(pipeline)
    lock = pipeline.lock.path.read_bytes()
    members = [Member(f"{top}/project.yaml", pipeline.config_path.read_bytes()),
               Member(f"{top}/{pipeline.lock.path.name}", lock)]
    for variant in pipeline.variants:
        members += _variant_members(pipeline, variant, top, epoch)
    by_name = {r["variant"]: r for r in rows}
    facts = [variant_facts(pipeline, v, by_name[v.name]) for v in pipeline.variants]
    card = model_card(pipeline.config["name"], pipeline.config["version"], facts,
                      json.loads(lock).get("caveats", {}))  # the bundled lock's words, not this tinypipe's
    report = render_html(pipeline.config["name"], html_rows(pipeline, rows), [], release=top)
    members += [Member(f"{top}/MODEL_CARD.md", card.encode()), Member(f"{top}/report.html", report.encode()),
                Member(f"{top}/results.json", (json.dumps({"results": rows}, indent=2, sort_keys=True)
                                               + "\n").encode())]
    return members


def write_release(pipeline: Pipeline, rows: list[dict[str, Any]], out: Path | None = None) -> Release:
    """Write the bundle directory and its tarball into `out` (default `DIR/dist`), replacing an earlier release
    of the same version. The directory is built beside its place and renamed into it, so a reader sees the old
    release or the new one, never half of one."""
    top = release_name(pipeline)
    dist = Path(out) if out is not None else pipeline.dir / DIST_DIR
    epoch = release_epoch()
    members = bundle_members(pipeline, rows, epoch)
    prefix = f"{top}/"
    checksums = Member(f"{top}/{CHECKSUMS}", sha256sums([Member(m.path[len(prefix):], m.data) for m in members]))
    members.append(checksums)
    dist.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{top}.", dir=dist))
    try:
        for m in members:
            path = staging / m.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(m.data)
            path.chmod(0o755 if m.executable else 0o644)
        for path in sorted(staging.rglob("*"), reverse=True):  # the files' own times say nothing either
            os.utime(path, (epoch, epoch), follow_symlinks=False)
        final = dist / top
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{top}.old.", dir=dist))
            os.replace(final, old / top)
        os.replace(staging / top, final)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    tarball = dist / f"{top}.tar.gz"
    data = tar_gz(members, epoch)
    atomic_write_bytes(tarball, data)
    return Release(directory=dist / top, tarball=tarball, tarball_sha256=sha256_bytes(data),
                   files=[m.path[len(prefix):] for m in members])
