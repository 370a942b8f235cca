"""`tinypipe release`: two clean releases of the gesture example, in two directories with different absolute paths,
run at different times under another time zone and user name, must give byte-identical bundles; the bundle's parts
must agree with each other and with the run's results; a stale lock or a failed budget refuses the release.

The two releases are one module fixture (each trains, quantizes, builds and runs the example from nothing; the
Rust sysroot comes from the session's user-level cache)."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.helpers import GESTURE, fresh_example, run_json, timed, timings_report, tinypipe
from tinypipe.config.boards import BOARDS
from tinypipe.release.archive import Member, release_epoch, sha256sums, tar_gz

RELEASE = "gesture-0.1.0"
VARIANT = "mps2-an386-native"
TIMINGS: dict[str, float] = {}
report_timings = timings_report(TIMINGS, "release")


def _release(project: Path, *extra: str, env: dict | None = None) -> dict:
    proc = tinypipe("release", str(project), "--json", *extra, env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def gesture_releases(tmp_path_factory, session_cache):
    """Two clean releases of the gesture example: (project, --json document) each. The second lives deeper, in
    another directory, and runs later, in another time zone, as another user name."""
    first_parent = tmp_path_factory.mktemp("release-a")
    second_parent = tmp_path_factory.mktemp("release-b") / "some" / "deeper" / "checkout"
    second_parent.mkdir(parents=True)
    first = fresh_example(GESTURE, first_parent)
    second = fresh_example(GESTURE, second_parent)
    with timed(TIMINGS, "first clean release of pipelines/gesture"):
        first_doc = _release(first)
    with timed(TIMINGS, "second clean release, another directory"):
        second_doc = _release(second, env={"TZ": "Asia/Tokyo", "USER": "someone-else", "LOGNAME": "someone-else"})
    return (first, first_doc), (second, second_doc)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_clean_releases_in_different_directories_are_byte_identical(gesture_releases):
    (first, first_doc), (second, second_doc) = gesture_releases
    assert first != second and first.name == second.name
    tarballs = [p / "dist" / f"{RELEASE}.tar.gz" for p in (first, second)]
    assert tarballs[0].read_bytes() == tarballs[1].read_bytes()
    assert first_doc["tarball_sha256"] == second_doc["tarball_sha256"]
    bundles = [p / "dist" / RELEASE for p in (first, second)]
    assert (bundles[0] / "SHA256SUMS").read_bytes() == (bundles[1] / "SHA256SUMS").read_bytes()
    assert _files(bundles[0]) == _files(bundles[1])
    # nothing in the bundle names the directory it was built in, nested archives included
    for project, bundle in zip((first, second), bundles):
        for name, data in _files(bundle).items():
            contents = [data, *(_tar_members(data).values() if name.endswith(".tar.gz") else [])]
            for blob in contents:
                assert str(project).encode() not in blob and str(project.parent).encode() not in blob, name


def _tar_members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_the_bundle_holds_every_part_and_sha256sums_verifies_it(gesture_releases):
    (project, doc), _ = gesture_releases
    bundle = project / "dist" / RELEASE
    expected = {"MODEL_CARD.md", "SHA256SUMS", "project.yaml", "report.html", "results.json", "tinypipe.lock",
                *(f"{VARIANT}/{name}" for name in ("firmware.elf", "firmware.bin", "firmware.hex", "run.json",
                                                   "sources.tar.gz"))}
    crate = {name for name in _files(bundle) if name.startswith(f"{VARIANT}/crate/")}
    # the model for the user's own firmware: the exported crate, its kernels and its C library
    assert {f"{VARIANT}/crate/{name}" for name in ("Cargo.toml", "README.md", "src/lib.rs", "src/model.rs",
                                                  "kernels/Cargo.toml", "export.json")} <= crate
    assert any(name.endswith(".a") for name in crate) and any(name.endswith(".h") for name in crate)
    assert (bundle / VARIANT / "crate" / "src" / "model.rs").read_bytes() == \
        (project / ".tinypipe" / "out" / VARIANT / "model.rs").read_bytes()
    expected |= crate
    assert set(_files(bundle)) == expected == set(doc["files"])
    check = subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=bundle, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert len(check.stdout.splitlines()) == len(expected) - 1
    assert (bundle / "tinypipe.lock").read_bytes() == (project / "tinypipe.lock").read_bytes()
    sources = _tar_members((bundle / VARIANT / "sources.tar.gz").read_bytes())
    root = f"{RELEASE}-{VARIANT}-sources"
    model_rs = (project / ".tinypipe" / "out" / VARIANT / "model.rs").read_bytes()
    assert sources[f"{root}/model.rs"] == model_rs
    assert {f"{root}/firmware/Cargo.toml", f"{root}/firmware/src/main.rs", f"{root}/firmware/link.x"} <= set(sources)
    assert sources[f"{root}/firmware/src/model.rs"] == model_rs
    # the tarball holds the directory, file for file
    tarball = (project / "dist" / f"{RELEASE}.tar.gz").read_bytes()
    assert _tar_members(tarball) == {f"{RELEASE}/{name}": data for name, data in _files(bundle).items()}


def test_the_tarball_metadata_is_normalised(gesture_releases):
    (project, _), _ = gesture_releases
    data = (project / "dist" / f"{RELEASE}.tar.gz").read_bytes()
    assert data[:4] == b"\x1f\x8b\x08\x00"  # gzip, deflate, no flags: no file name in the header
    assert data[4:8] == b"\x00\x00\x00\x00"  # gzip mtime 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", ""), m.name
        assert m.mode == (0o755 if m.isdir() else 0o644), m.name


def _intel_hex(text: str) -> dict[int, int]:
    """address -> byte of an Intel HEX file, every record's checksum checked."""
    memory: dict[int, int] = {}
    base = 0
    for number, line in enumerate(text.splitlines(), 1):
        assert line.startswith(":"), f"line {number}: {line!r}"
        record = bytes.fromhex(line[1:])
        assert sum(record) % 256 == 0, f"line {number}: bad checksum"
        count, address, kind, payload = record[0], int.from_bytes(record[1:3], "big"), record[3], record[4:-1]
        assert len(payload) == count
        if kind == 0x00:
            for i, byte in enumerate(payload):
                memory[base + address + i] = byte
        elif kind == 0x01:
            return memory
        elif kind == 0x02:
            base = int.from_bytes(payload, "big") << 4
        elif kind == 0x04:
            base = int.from_bytes(payload, "big") << 16
    raise AssertionError("no end-of-file record")


def test_the_hex_holds_the_bins_bytes_at_the_flash_origin_and_the_elf_loads_there(gesture_releases):
    from elftools.elf.elffile import ELFFile

    (project, _), _ = gesture_releases
    files = project / "dist" / RELEASE / VARIANT
    binary = (files / "firmware.bin").read_bytes()
    memory = _intel_hex((files / "firmware.hex").read_text())
    origin = BOARDS["mps2-an386"].flash.origin
    assert min(memory) == origin and max(memory) == origin + len(binary) - 1
    assert bytes(memory.get(origin + i, 0) for i in range(len(binary))) == binary
    with open(files / "firmware.elf", "rb") as f:
        elf = ELFFile(f)
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD" and s["p_filesz"] > 0]
        assert min(s["p_paddr"] for s in loads) == origin
        covered = set()
        for segment in loads:  # what the ELF loads is in the hex at its load address (gaps between sections: 0)
            start, size = segment["p_paddr"], segment["p_filesz"]
            assert bytes(memory.get(start + i, 0) for i in range(size)) == segment.data()
            covered.update(range(start, start + size))
    assert set(memory) <= covered  # and the hex holds nothing else


def test_the_model_card_states_the_runs_results(gesture_releases):
    (project, doc), _ = gesture_releases
    run = run_json(project)  # the release's run: everything cached, the same results
    assert {s["status"] for s in run["stages"]} == {"cached"}
    assert run["results"] == doc["results"]
    row = run["results"][0]
    lock = json.loads((project / "tinypipe.lock").read_text())
    card = (project / "dist" / RELEASE / "MODEL_CARD.md").read_text()
    pct = lambda x: f"{x * 100:.2f} %"  # noqa: E731
    for line in [
        f"| accuracy on the host (int8, TFLM interpreter) | {pct(row['accuracy_host'])} |",
        f"| accuracy on the device | {pct(row['accuracy_device'])} |",
        "| bit-exact with the host interpreter | yes |",
        f"| flash: application | {row['app_flash_bytes']:,} B |",
        f"| flash: with the test windows the emulator replays | {row['flash_bytes']:,} B |",
        f"| RAM (data, bss, stack reservation) | {row['ram_bytes']:,} B |",
        f"| tensor arena | {row['arena_bytes']:,} B |",
        f"`{lock['variants'][VARIANT]['data']['output']}`",
        "- quantize, train: TensorFlow float arithmetic: seeded, op determinism on",
    ]:
        assert line in card
    assert f"| instructions per inference (QEMU -icount, not cycles) | {row['instructions_per_inference']:,} (min " in card
    assert json.loads((project / "dist" / RELEASE / "results.json").read_text()) == {"results": run["results"]}
    assert "train" in lock["caveats"] and "quantize" in lock["caveats"]


def _copy(project: Path, where: Path) -> Path:
    """The released project, store and lock included, in another directory (to edit without touching it)."""
    copy = where / project.name
    shutil.copytree(project, copy, symlinks=True)
    shutil.rmtree(copy / "dist")
    return copy


def test_a_stale_lock_refuses_the_release_and_builds_nothing(gesture_releases, tmp_path):
    (released, _), _ = gesture_releases
    project = _copy(released, tmp_path)
    text = (project / "project.yaml").read_text()
    (project / "project.yaml").write_text(text.replace("epochs: 30", "epochs: 31"))
    entries = set((project / ".tinypipe" / "store").iterdir())
    proc = tinypipe("release", str(project))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(
        "check failed: cannot release gesture-0.1.0: tinypipe.lock does not match the project, so the release "
        "would not be what the lock pins; nothing was built:\n"
        "  train (mps2-an386-native): config model.epochs: 30 -> 31\n"), proc.stderr
    assert "  run `tinypipe run` to rebuild and update tinypipe.lock, commit it, then release\n" in proc.stderr
    assert set((project / ".tinypipe" / "store").iterdir()) == entries
    assert not (project / "dist").exists()


def test_a_failed_budget_refuses_the_release(gesture_releases, tmp_path):
    (released, doc), _ = gesture_releases
    project = _copy(released, tmp_path)
    text = (project / "project.yaml").read_text()
    (project / "project.yaml").write_text(text.replace("accuracy_device_min: 0.9", "accuracy_device_min: 0.999"))
    proc = tinypipe("release", str(project), "--out", str(tmp_path / "dist"))
    assert proc.returncode == 1, proc.stderr
    accuracy = doc["results"][0]["accuracy_device"]
    assert (f"check failed: {VARIANT}: device accuracy {accuracy:,} is below the minimum 0.999 "
            "(budgets.accuracy_device_min)\n"
            "error: cannot release gesture-0.1.0: 1 check(s) failed; nothing was written\n"
            f"  hint: fix what failed, then run `tinypipe release {project}` again\n") in proc.stderr
    assert not (tmp_path / "dist").exists()


# --- without a pipeline run ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, message", [
    ("1.0", 'version: 1.0 is a number, not a version: quote it (version: "1.0")'),
    ('"1.0 beta"', "version: '1.0 beta' is not a version like 1.2.0 (numbers and dots, then optionally - or + and "
                   "letters, digits, dots or dashes)"),
    ("../../etc", "version: '../../etc' is not a version like 1.2.0"),
])
def test_a_bad_version_is_a_user_error_at_its_line(tmp_path, value, message):
    project = fresh_example(GESTURE, tmp_path, extra=f"version: {value}\n")
    lines = (project / "project.yaml").read_text().splitlines()
    proc = tinypipe("release", str(project))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {project / 'project.yaml'}:{len(lines)}:10 {message}"), proc.stderr
    assert not (project / ".tinypipe" / "store").exists() and not (project / "dist").exists()


def test_archives_are_the_same_bytes_whatever_the_order_and_carry_the_release_epoch():
    members = [Member("r/b/x.bin", b"\x00\x01"), Member("r/a.txt", b"a\n"), Member("r/tool", b"#!/bin/sh\n", True)]
    one = tar_gz(members, 1_700_000_000)
    assert one == tar_gz(list(reversed(members)), 1_700_000_000)
    with tarfile.open(fileobj=io.BytesIO(one), mode="r:gz") as tar:
        listed = [(m.name, m.mtime, m.mode) for m in tar.getmembers()]
    assert listed == [("r", 1_700_000_000, 0o755), ("r/a.txt", 1_700_000_000, 0o644),
                      ("r/b", 1_700_000_000, 0o755), ("r/b/x.bin", 1_700_000_000, 0o644),
                      ("r/tool", 1_700_000_000, 0o755)]
    assert gzip.decompress(one) == gzip.decompress(tar_gz(members, 1_700_000_000))
    assert sha256sums(members).decode().splitlines()[0].endswith("  r/a.txt")
    assert release_epoch({"SOURCE_DATE_EPOCH": "1700000000"}) == 1_700_000_000 and release_epoch({}) == 0


def test_a_bad_source_date_epoch_is_a_user_error():
    from tinypipe.core.errors import UserError

    with pytest.raises(UserError, match=r"SOURCE_DATE_EPOCH='yesterday' is not a whole number of seconds since 1970"):
        release_epoch({"SOURCE_DATE_EPOCH": "yesterday"})
