"""The engine on light stand-in stages: caching, change propagation, `status --why`, failures, atomic store."""

import json
import re
import types
from pathlib import Path

import pytest

import tinypipe.engine.graph as graph_mod
import tinypipe.engine.pipeline as pipeline_mod
from tinypipe.engine.executor import InlineExecutor
from tinypipe.engine.pipeline import Pipeline
from tinypipe.engine.store import Store
from tinypipe.engine.why import status
from tinypipe.stages.base import Stage

CALLS: list[str] = []


def _stage(name, needs, config, fail_when=None):
    def run(ctx):
        CALLS.append(name)
        if fail_when and fail_when(ctx.variant):
            raise RuntimeError(f"{name} exploded")
        text = json.dumps(config(ctx.variant), sort_keys=True)
        for dep in needs:
            text += (ctx.inputs[dep] / "out.txt").read_text()
        (ctx.out / "out.txt").write_text(text)
        return {"length": len(text)}

    return types.SimpleNamespace(STAGE=Stage(name=name, version="1", needs=needs, config=config), run=run)


FAKE = {
    "data": _stage("data", (), lambda v: {"seed": v.project.seed, "data": v.project.data.model_dump(mode="json")}),
    "train": _stage("train", ("data",), lambda v: {"model": v.project.model.model_dump(mode="json")}),
    "quantize": _stage("quantize", ("train",), lambda v: v.project.quantization.model_dump(mode="json")),
    "build": _stage("build", ("quantize",), lambda v: {"board": v.board.name},
                    fail_when=lambda v: v.board.name == "mps2-an500"),
}


@pytest.fixture
def fake_stages(monkeypatch):
    monkeypatch.setattr(graph_mod, "pipeline_for", lambda engine: tuple((s, s) for s in FAKE))
    monkeypatch.setattr(graph_mod, "load", FAKE.__getitem__)
    # the stand-in stages exist only in this process: run them inline instead of in worker processes
    monkeypatch.setattr(pipeline_mod, "ProcessExecutor", lambda jobs: InlineExecutor(load=FAKE.__getitem__))
    CALLS.clear()
    return CALLS


PROJECT = """\
name: t
seed: 1
model:
  layers:
    - {type: dense, units: 3}
quantization:
  representative_samples: 100
"""


def project(tmp_path: Path, text: str = PROJECT) -> Path:
    (tmp_path / "project.yaml").write_text(text)
    return tmp_path


def statuses(outcome):
    return {r.stage: r.status for r in outcome.records}


def test_second_run_does_nothing(tmp_path, fake_stages):
    d = project(tmp_path)
    first = Pipeline(d).run()
    assert statuses(first) == {"data": "ran", "train": "ran", "quantize": "ran", "build": "ran"}
    assert fake_stages == ["data", "train", "quantize", "build"]
    fake_stages.clear()
    second = Pipeline(d).run()
    assert statuses(second) == {s: "cached" for s in FAKE}
    assert fake_stages == []


def test_quantization_change_reruns_quantize_and_below_only(tmp_path, fake_stages):
    d = project(tmp_path)
    Pipeline(d).run()
    fake_stages.clear()
    project(tmp_path, PROJECT.replace("representative_samples: 100", "representative_samples: 50"))
    p = Pipeline(d)
    why = {s.stage: s for s in status(p.graph, p.lock)}
    assert why["data"].state == "cached" and why["train"].state == "cached"
    assert why["quantize"].state == "stale"
    assert why["quantize"].reasons == ["config representative_samples: 100 -> 50"]
    assert why["build"].reasons == ["waits on quantize (not built yet or stale)"]
    outcome = p.run()
    assert fake_stages == ["quantize", "build"]
    assert statuses(outcome)["train"] == "cached"


def test_reverting_a_change_hits_the_store_again(tmp_path, fake_stages):
    d = project(tmp_path)
    Pipeline(d).run()
    project(tmp_path, PROJECT.replace("seed: 1", "seed: 2"))
    Pipeline(d).run()
    fake_stages.clear()
    project(tmp_path)
    assert statuses(Pipeline(d).run()) == {s: "cached" for s in FAKE}
    assert fake_stages == []


def test_a_failing_matrix_cell_does_not_stop_the_others(tmp_path, fake_stages):
    d = project(tmp_path, PROJECT + "matrix:\n  board: [mps2-an386, mps2-an500, mps2-an385]\n")
    p = Pipeline(d)
    assert [n.name for n in p.graph.nodes] == ["data", "train", "quantize", "build", "build", "build"]
    outcome = p.run(jobs=2)
    builds = [r for r in outcome.records if r.stage == "build"]
    assert sorted((r.variants[0], r.status) for r in builds) == [
        ("mps2-an385-native", "ran"), ("mps2-an386-native", "ran"), ("mps2-an500-native", "failed")]
    assert fake_stages.count("train") == 1  # shared upstream ran once for three cells
    failed = outcome.failed()[0]
    assert "build exploded" in str(failed.error)
    assert not [c for c in (d / ".tinypipe" / "store").iterdir() if c.name.startswith(".tmp-")]


def test_lock_records_every_stage_and_status_explains_a_missing_entry(tmp_path, fake_stages):
    d = project(tmp_path)
    p = Pipeline(d)
    p.run()
    lock = json.loads((d / "tinypipe.lock").read_text())
    assert lock["version"] == 1
    stages = lock["variants"]["mps2-an386-native"]
    assert set(stages) == set(FAKE)
    store = Store(d / ".tinypipe" / "store")
    store.remove(stages["build"]["key"])
    p2 = Pipeline(d)
    why = {s.stage: s for s in status(p2.graph, p2.lock)}
    assert why["build"].reasons == ["the store entry is missing (deleted or garbage-collected)"]


def test_store_commit_is_all_or_nothing(tmp_path):
    store = Store(tmp_path / "store")
    tmp = store.begin()
    (tmp / "a.bin").write_bytes(b"123")
    assert store.keys() == []  # nothing visible before commit
    meta = store.commit(tmp, "k1", {"stage": "x"})
    assert store.has("k1") and meta["output"]
    assert (store.path("k1") / "a.bin").read_bytes() == b"123"
    dead = store.root / ".tmp-999999999-abc"  # a temporary from a process that no longer exists
    dead.mkdir()
    assert store.sweep() == 1 and not dead.exists()


def test_gc_deletes_only_entries_the_lock_no_longer_references(tmp_path, fake_stages):
    import subprocess
    import sys

    d = project(tmp_path)
    Pipeline(d).run()
    old_keys = set(Store(d / ".tinypipe" / "store").keys())
    project(tmp_path, PROJECT.replace("representative_samples: 100", "representative_samples: 50"))
    Pipeline(d).run()
    store = Store(d / ".tinypipe" / "store")
    live = {e["key"] for e in json.loads((d / "tinypipe.lock").read_text())["variants"]["mps2-an386-native"].values()}
    assert len(store.keys()) == 6 and len(live) == 4
    # gc reads only the lock and the store, so entries of the stand-in stages are judged like real ones
    proc = subprocess.run([sys.executable, "-m", "tinypipe", "gc", str(d)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "deleted 2 unreferenced entries" in proc.stdout
    assert set(store.keys()) == live and not (old_keys - live) & set(store.keys())


def test_gc_cache_prunes_what_no_run_used_lately(tmp_path, fake_stages, monkeypatch):
    """A cached run marks the user-level cache entries it used; `gc --cache --days N` deletes only the shared
    store entries and TFLM objects idle for longer, and `--dry-run` deletes nothing."""
    import os
    import subprocess
    import sys
    import time

    cache = tmp_path / "cache"
    monkeypatch.setenv("TINYPIPE_CACHE", str(cache))
    shared_data = types.SimpleNamespace(STAGE=Stage(name="data", version="1", needs=(), shared=True,
                                                    config=FAKE["data"].STAGE.config), run=FAKE["data"].run)
    monkeypatch.setitem(FAKE, "data", shared_data)
    (tmp_path / "p").mkdir()
    d = project(tmp_path / "p")
    Pipeline(d).run()
    shared = Store(cache / "store")
    (key,) = shared.keys()
    long_ago = time.time() - 90 * 86_400
    os.utime(shared.path(key) / "meta.json", (long_ago, long_ago))
    assert statuses(Pipeline(d).run())["data"] == "cached"
    assert time.time() - shared.last_used(key) < 3_600  # the cached run touched it

    stale = shared.begin()
    (stale / "out.txt").write_text("old")
    shared.commit(stale, "f" * 64, {"stage": "toolchain"})
    os.utime(shared.path("f" * 64) / "meta.json", (long_ago, long_ago))
    objects = cache / "tflm-objects" / "ab"
    for name, when in (("old", long_ago), ("new", time.time())):
        entry = objects / f"ab{name}"
        entry.mkdir(parents=True)
        for suffix in (".o", ".json"):
            (entry / f"x{suffix}").write_text(name)
            os.utime(entry / f"x{suffix}", (when, when))

    def gc(*extra):
        proc = subprocess.run([sys.executable, "-m", "tinypipe", "gc", "--cache", "--days", "30", *extra],
                              capture_output=True, text=True, env=dict(os.environ))
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    listed = gc("--dry-run")
    assert "would delete store toolchain ffffffffffffffff… (unused for 90 days)" in listed
    assert "would delete 2 entries" in listed and shared.has("f" * 64) and (objects / "abold").is_dir()
    assert "deleted 2 entries unused for 30+ days" in gc()
    assert set(shared.keys()) == {key}
    assert not (objects / "abold").exists() and (objects / "abnew" / "x.o").is_file()


def test_run_locked_is_a_ci_gate(tmp_path, fake_stages, capsys):
    """`run --locked` exits 1 naming what no longer matches the lock, and builds nothing; a matching lock runs."""
    from tinypipe.cli import main

    d = project(tmp_path)
    assert main(["run", str(d), "--locked", "-q"]) == 1
    assert "no tinypipe.lock: run without --locked once and commit it" in capsys.readouterr().err
    assert fake_stages == [] and not (d / "tinypipe.lock").exists()

    Pipeline(d).run()
    fake_stages.clear()
    assert main(["run", str(d), "--locked", "-q", "--json"]) == 0
    assert fake_stages == []

    # a missing store entry with a matching key is rebuilt: the lock pins keys, the store is a cache
    lock = json.loads((d / "tinypipe.lock").read_text())
    Store(d / ".tinypipe" / "store").remove(lock["variants"]["mps2-an386-native"]["build"]["key"])
    assert main(["run", str(d), "--locked", "-q", "--json"]) == 0
    assert fake_stages == ["build"]
    capsys.readouterr()

    fake_stages.clear()
    project(tmp_path, PROJECT.replace("representative_samples: 100", "representative_samples: 50"))
    assert main(["run", str(d), "--locked", "-q"]) == 1
    err = capsys.readouterr().err
    assert "tinypipe.lock does not match" in err
    assert "quantize (mps2-an386-native): config representative_samples: 100 -> 50" in err
    assert "train" not in err.split("nothing was built")[1]  # only what changed is named
    assert fake_stages == []
    assert json.loads((d / "tinypipe.lock").read_text()) == lock


def test_out_dir_links_the_current_artifacts(tmp_path, fake_stages, monkeypatch, capsys):
    """`.tinypipe/out/<variant>/` holds relative symlinks to the current entries' files; a no-op run rewrites none,
    a change repoints them, and the project can move."""
    import os
    import shutil

    import tinypipe.engine.out as out_mod
    from tinypipe.cli import main

    # files the entry lacks and stages the graph lacks get no link
    monkeypatch.setattr(out_mod, "LINKS", {"build": ("out.txt", "absent.txt"), "nosuchstage": ("x",)})
    (tmp_path / "p").mkdir()
    d = project(tmp_path / "p")
    Pipeline(d).run()
    where = d / ".tinypipe" / "out" / "mps2-an386-native"
    assert sorted(p.name for p in where.iterdir()) == ["out.txt"]
    link = where / "out.txt"
    lock = json.loads((d / "tinypipe.lock").read_text())["variants"]["mps2-an386-native"]
    assert not os.path.isabs(os.readlink(link))
    assert link.resolve() == (d / ".tinypipe" / "store" / lock["build"]["key"] / "out.txt").resolve()
    assert main(["show", str(d), "build"]) == 0
    assert f"stable path: {link}" in capsys.readouterr().out
    before = os.lstat(link)
    Pipeline(d).run()  # a no-op run: the link is not rewritten
    assert os.lstat(link).st_ino == before.st_ino and os.lstat(link).st_mtime_ns == before.st_mtime_ns
    project(d, PROJECT.replace("seed: 1", "seed: 2"))
    Pipeline(d).run()
    new_key = json.loads((d / "tinypipe.lock").read_text())["variants"]["mps2-an386-native"]["build"]["key"]
    assert new_key != lock["build"]["key"] and link.resolve().parent.name == new_key
    shutil.move(d, tmp_path / "moved")
    assert (tmp_path / "moved" / ".tinypipe" / "out" / "mps2-an386-native" / "out.txt").read_text()


def test_plan_status_and_show_name_stages_by_their_store_key(tmp_path, fake_stages, capsys):
    """One identifier everywhere: `<stage>:<key prefix>` as the lock and the store name it, or
    `<stage>:pending-<identity prefix>`, distinct per matrix cell."""
    from tinypipe.cli import main

    d = project(tmp_path)
    assert main(["plan", str(d), "--json"]) == 0
    nodes = {n["stage"]: n for n in json.loads(capsys.readouterr().out)["nodes"]}
    data_key = nodes["data"]["key"]
    assert len(data_key) == 64 and nodes["data"]["id"] == f"data:{data_key[:12]}"
    train = nodes["train"]  # its key waits on data's output
    assert re.fullmatch(r"train:pending-[0-9a-f]{8}", train["id"])
    assert (train["key"], train["needs"]) == (None, [f"data:{data_key[:12]}"])
    Pipeline(d).run()
    lock = json.loads((d / "tinypipe.lock").read_text())["variants"]["mps2-an386-native"]
    assert main(["plan", str(d)]) == 0
    text = capsys.readouterr().out
    for stage in FAKE:
        assert f"{stage}:{lock[stage]['key'][:12]} " in text
        assert (d / ".tinypipe" / "store" / lock[stage]["key"]).is_dir()
    assert "pending" not in text
    assert main(["status", str(d), "--json"]) == 0
    for s in json.loads(capsys.readouterr().out):
        assert s["key"] == lock[s["stage"]]["key"] and s["id"] == f"{s['stage']}:{s['key'][:12]}"
    assert main(["show", str(d), "build"]) == 0
    assert f"mps2-an386-native build:{lock['build']['key'][:12]}: " in capsys.readouterr().out


def test_run_locked_fails_a_rebuild_the_lock_does_not_record(tmp_path, fake_stages, monkeypatch, capsys):
    """A store entry rebuilt under `--locked` to another output: exit 1, the stages after it are not built on it,
    and the lock file is left as it was."""
    from tinypipe.cli import main

    d = project(tmp_path)
    Pipeline(d).run()
    text = (d / "tinypipe.lock").read_text()
    lock = json.loads(text)["variants"]["mps2-an386-native"]
    Store(d / ".tinypipe" / "store").remove(lock["quantize"]["key"])
    fake_stages.clear()
    real = FAKE["quantize"].run

    def unreproducible(ctx):
        summary = real(ctx)
        (ctx.out / "out.txt").write_text("something else")
        return summary

    monkeypatch.setattr(FAKE["quantize"], "run", unreproducible)
    assert main(["run", str(d), "--locked", "-q", "--json"]) == 1
    err = capsys.readouterr().err
    assert "quantize (mps2-an386-native): rebuilt with output" in err and "not reproducible" in err
    assert "build (mps2-an386-native): not built: its key" in err
    assert fake_stages == ["quantize"]
    assert (d / "tinypipe.lock").read_text() == text


def test_out_dir_drops_the_link_of_a_failed_stage(tmp_path, fake_stages, monkeypatch):
    """A cell whose build fails keeps no link to an older build: only current artifacts have stable paths."""
    import tinypipe.engine.out as out_mod

    monkeypatch.setattr(out_mod, "LINKS", {"build": ("out.txt",)})
    d = project(tmp_path, PROJECT + "matrix:\n  board: [mps2-an386, mps2-an500]\n")
    out = d / ".tinypipe" / "out"
    stale = out / "mps2-an500-native" / "out.txt"
    stale.parent.mkdir(parents=True)
    stale.symlink_to("../../store/0000/out.txt")
    Pipeline(d).run()
    assert (out / "mps2-an386-native" / "out.txt").is_file()
    assert not stale.is_symlink()


def test_a_sweep_shares_every_stage_upstream_of_what_it_changes(tmp_path, fake_stages):
    """Identity by (stage, config subtree): sweeping the calibration trains once; sweeping epochs trains per value
    but generates the data once."""
    (tmp_path / "q").mkdir()
    d = project(tmp_path / "q", PROJECT + "matrix:\n  quantization.representative_samples: [50, 100]\n")
    outcome = Pipeline(d).run()
    assert sorted(fake_stages) == ["build", "build", "data", "quantize", "quantize", "train"]
    builds = [r for r in outcome.records if r.stage == "build"]
    assert sorted(r.variants[0] for r in builds) == ["mps2-an386-native-representative_samples100",
                                                     "mps2-an386-native-representative_samples50"]
    (train,) = [r for r in outcome.records if r.stage == "train"]
    assert len(train.variants) == 2

    fake_stages.clear()
    (tmp_path / "e").mkdir()
    d = project(tmp_path / "e", PROJECT + "matrix:\n  model.epochs: [1, 2]\n  board: [mps2-an385, mps2-an386]\n")
    p = Pipeline(d)
    assert [v.name for v in p.variants] == ["mps2-an385-native-epochs1", "mps2-an385-native-epochs2",
                                            "mps2-an386-native-epochs1", "mps2-an386-native-epochs2"]
    outcome = p.run(jobs=2)
    assert [fake_stages.count(s) for s in FAKE] == [1, 2, 2, 4]  # data, train, quantize, build
    (data,) = [r for r in outcome.records if r.stage == "data"]
    assert data.status == "ran" and len(data.variants) == 4
    trains = {tuple(r.variants) for r in outcome.records if r.stage == "train"}
    assert trains == {("mps2-an385-native-epochs1", "mps2-an386-native-epochs1"),
                      ("mps2-an385-native-epochs2", "mps2-an386-native-epochs2")}
    lock = json.loads((d / "tinypipe.lock").read_text())
    assert set(lock["variants"]) == {v.name for v in p.variants}


def test_plan_tells_apart_the_pending_stages_of_parallel_cells(tmp_path, fake_stages, capsys):
    from tinypipe.cli import main

    d = project(tmp_path, PROJECT + "matrix:\n  model.epochs: [1, 2]\n  board: [mps2-an385, mps2-an386]\n")
    assert main(["plan", str(d), "--json"]) == 0
    nodes = json.loads(capsys.readouterr().out)["nodes"]
    ids = [n["id"] for n in nodes]
    assert len(ids) == len(set(ids)) == 1 + 2 + 2 + 4  # data, train and quantize per epochs, build per cell
    assert sum(i.startswith("build:pending-") for i in ids) == 4
    by_id = {n["id"]: n for n in nodes}
    for n in nodes:  # every need names one node of the plan
        assert all(need in by_id for need in n["needs"])


def _bare_node(name, *needs, helped_by=()):
    stage = Stage(name=name, version="1", needs=tuple(n.name for n in needs if n.name not in helped_by),
                  config=lambda variant: {}, helped_by=tuple(helped_by))
    return graph_mod.Node(stage=stage, module="", variant=None, variants=[name], needs=list(needs), store=None,
                          ident=name, config={}, tools={})


def test_a_stage_runs_after_what_helps_it_but_also_when_that_failed():
    """`helped_by` (the build and the crates compiled ahead): ordered after it, not stopped by its failure."""
    from tinypipe.engine.frontier import Frontier

    toolchain = _bare_node("toolchain")
    crates = _bare_node("crates", toolchain)
    firmware = _bare_node("firmware")
    build = _bare_node("build", firmware, toolchain, crates, helped_by=("crates",))
    frontier = Frontier([toolchain, crates, firmware, build])
    assert frontier.pop() is toolchain and frontier.settle(toolchain, "ran") == []
    assert frontier.pop() is crates and frontier.pop() is firmware
    assert frontier.settle(firmware, "ran") == [] and frontier.peek() is None  # the build waits for the crates
    assert frontier.settle(crates, "failed") == []  # and runs without them: nothing is skipped
    assert frontier.pop() is build


def test_the_frontier_starts_the_longest_chain_first_and_skips_below_a_failure():
    from tinypipe.engine.frontier import Frontier

    def node(name, *needs):
        return _bare_node(name, *needs)

    short = node("short")  # a one-stage branch, first in topological order
    head = node("head")
    middle = node("middle", head)
    tail = node("tail", middle, short)
    frontier = Frontier([short, head, middle, tail])
    assert frontier.pop() is head and frontier.pop() is short and frontier.peek() is None
    assert frontier.settle(head, "ran") == [] and frontier.pop() is middle
    assert frontier.settle(short, "cached") == [] and frontier.peek() is None  # tail still needs middle
    assert frontier.settle(middle, "failed") == [tail]
    assert frontier.settled[tail] == "skipped" and frontier.peek() is None
