"""`run --executor dask` on a real local cluster: a `dask scheduler` and two `dask worker` processes started
here, each worker in its own directory with its own store and user-level cache, artifacts moving through one
shared cache directory. The results and every stage's output hash must equal a local run's; a worker killed
mid-stage must not stop the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import GESTURE, fresh_example, run_json, timed, timings_report, tinypipe, tinypipe_cmd

# Two cells sharing data and training: the quantization (and all below it) differs, so the cluster has
# independent stages to run side by side.
SWEEP = "\nmatrix:\n  quantization.representative_samples: [60, 100]\n"

timings: dict[str, float] = {}
report_timings = timings_report(timings, "dask")


def _outputs(project: Path) -> dict[tuple[str, str], str]:
    lock = json.loads((project / "tinypipe.lock").read_text())
    return {(variant, stage): rec["output"] for variant, stages in lock["variants"].items()
            for stage, rec in stages.items()}


def _results(doc: dict) -> list[tuple]:
    return sorted((r["variant"], r["instructions_per_inference"], r["flash_bytes"], r["ram_bytes"],
                   r["accuracy_host"], r["accuracy_device"], r["bit_exact"]) for r in doc["results"])


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.file = root / "scheduler.json"
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                                            os.environ.get("PYTHONPATH")]))}
        self.scheduler = self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0",
                                                   "--no-dashboard", "--scheduler-file", str(self.file)])
        deadline = time.monotonic() + 60
        while not self.file.is_file():
            if self.scheduler.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dask scheduler did not start:\n{(root / 'scheduler.log').read_text()}")
            time.sleep(0.2)
        self.address = json.loads(self.file.read_text())["address"]
        self.workers = {name: self.start_worker(name) for name in ("w1", "w2")}
        self.wait_for_workers(2)

    def _start(self, name: str, args: list[str], cwd: Path | None = None, env: dict | None = None):
        log = open(self.root / f"{name}.log", "ab")
        return subprocess.Popen([sys.executable, "-m", "dask", *args], cwd=cwd or self.root, env=env or self.env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)

    def start_worker(self, name: str):
        home = self.root / name  # a machine of its own: working directory, store, user-level cache
        (home / "cache").mkdir(parents=True, exist_ok=True)
        return self._start(name, ["worker", self.address, "--name", name, "--nthreads", "1", "--no-dashboard",
                                  "--local-directory", str(home / "local")],
                           cwd=home, env={**self.env, "TINYPIPE_CACHE": str(home / "cache")})

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=30, set_as_default=False)

    def wait_for_workers(self, n: int) -> None:
        with self.client() as client:
            client.wait_for_workers(n, timeout=120)

    def kill(self, name: str) -> None:
        os.killpg(self.workers[name].pid, signal.SIGKILL)  # the worker, its nanny and its stage processes
        self.workers[name].wait()

    def stop(self) -> None:
        for process in [*self.workers.values(), self.scheduler]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*self.workers.values(), self.scheduler]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'tinypipe[dask]')")
    c = Cluster(tmp_path_factory.mktemp("dask"))
    yield c
    c.stop()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The same sweep run here, with local worker processes: what the cluster must reproduce."""
    project = fresh_example(GESTURE, tmp_path_factory.mktemp("local"), extra=SWEEP)
    with timed(timings, "local run (2 cells)"):
        doc = run_json(project, "-j", "2")
    return project, doc


@pytest.mark.slow
def test_cluster_run_equals_local_run(cluster, local_run, tmp_path):
    local, local_doc = local_run
    project = fresh_example(GESTURE, tmp_path, extra=SWEEP)
    shared = tmp_path / "shared-cache"
    with timed(timings, "cluster run (2 cells, 2 workers)"):
        doc = run_json(project, "--executor", "dask", "--scheduler", cluster.address,
                       "--remote-cache", str(shared))
    ran_here = {s["stage"] for s in doc["stages"] if s["status"] == "ran"}
    assert {"data", "train", "quantize", "codegen", "build", "run"} <= ran_here
    # every stage that ran went through the cluster: its entry was built in a worker's store
    worker_entries = {p.name for w in ("w1", "w2") for p in (cluster.root / w / "local").glob("**/tinypipe-store/*")}
    lock = json.loads((project / "tinypipe.lock").read_text())
    for stage in ran_here:
        for variant in lock["variants"]:
            if stage in lock["variants"][variant]:
                assert lock["variants"][variant][stage]["key"] in worker_entries, (stage, variant)
    assert _outputs(project) == _outputs(local)
    assert _results(doc) == _results(local_doc)
    assert all(r["bit_exact"] for r in doc["results"])
    # the local store holds every entry, as a local run leaves it: a second run does nothing, no cluster needed
    again = run_json(project)
    assert {s["status"] for s in again["stages"]} == {"cached"}


@pytest.mark.slow
def test_a_worker_killed_mid_stage_does_not_stop_the_run(cluster, local_run, tmp_path):
    local, _ = local_run
    project = fresh_example(GESTURE, tmp_path, extra=SWEEP)
    shared = tmp_path / "shared-cache"
    run = subprocess.Popen(tinypipe_cmd() + ["run", str(project), "--until", "train", "--json", "--executor", "dask",
                                             "--scheduler", cluster.address, "--remote-cache", str(shared)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env)
    victim = None
    with cluster.client() as client:
        deadline = time.monotonic() + 300
        while victim is None and time.monotonic() < deadline and run.poll() is None:
            names = {addr: info["name"] for addr, info in client.scheduler_info()["workers"].items()}
            for addr, keys in client.processing().items():
                if any("tinypipe-train" in str(k) for k in keys):
                    victim = names.get(addr)
            time.sleep(0.2)
    assert victim is not None, "the train stage was never seen running on a worker"
    time.sleep(2)  # well inside training
    cluster.kill(victim)
    with timed(timings, "cluster run to train, one worker killed"):
        stdout, stderr = run.communicate(timeout=900)
    assert run.returncode == 0, stderr[-4000:]
    doc = json.loads(stdout)
    assert {s["stage"]: s["status"] for s in doc["stages"]}["train"] == "ran"
    local_outputs = _outputs(local)
    for key, output in _outputs(project).items():
        assert output == local_outputs[key], key
    # bring the cluster back to two workers for whatever runs after
    cluster.workers[victim] = cluster.start_worker(victim)


def test_dask_needs_a_writable_remote_cache(tmp_path):
    project = fresh_example(GESTURE, tmp_path)
    proc = tinypipe("run", str(project), "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1")
    assert proc.returncode == 2, proc.stderr
    assert "--executor dask moves artifacts through a remote cache the workers can write, but no remote cache " \
           "is configured" in proc.stderr


def test_dask_needs_a_scheduler_address(tmp_path):
    project = fresh_example(GESTURE, tmp_path)
    proc = tinypipe("run", str(project), "--executor", "dask", env={"TINYPIPE_SCHEDULER": ""})
    assert proc.returncode == 2, proc.stderr
    assert "--executor dask needs the address of a dask scheduler" in proc.stderr
