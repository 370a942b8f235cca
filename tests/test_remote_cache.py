"""The shared remote cache on real servers started here on localhost: OpenSSH's sshd for `sftp://` (a generated
host key and user key, found by the client through ~/.ssh/config as a user sets it up) and moto's standalone S3
server for `s3://`, plus a plain directory. No mocks: fsspec, sshfs and s3fs talk to the servers.

One gesture checkout is built once (module fixture) and pushes to every remote; each test then starts a second
checkout in a fresh directory with an empty local store and an empty user-level cache.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import GESTURE, fresh_example, run_json, tinypipe
from tinypipe.engine.remote import ENV_VAR, USED, RemoteCache, choose_url

pytest.importorskip("fsspec", reason="fsspec is not installed (pip install -e '.[test]')")

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"the server did not listen on port {port} within {seconds} s:\n{log.read_text()}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def lock_outputs(project: Path) -> dict:
    lock = json.loads((project / "tinypipe.lock").read_text())
    return {variant: {stage: (e["key"], e["output"]) for stage, e in stages.items()}
            for variant, stages in lock["variants"].items()}


# --- servers ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sftp_server(tmp_path_factory):
    """sshd on a free localhost port, in the foreground (-D) with its log on stderr (-e); and a HOME whose
    ~/.ssh holds the user key, the host key in known_hosts and a `Host` entry: the URL is
    `sftp://tinypipe-test-sftp/<path>`, its credentials found where ssh users keep them."""
    if not Path(SSHD).is_file():
        pytest.skip("sshd not found: apt-get install openssh-server (make setup does)")
    if not Path("/run/sshd").is_dir():  # sshd's privilege separation directory (systemd creates it for the service)
        try:
            os.makedirs("/run/sshd", mode=0o755)
        except PermissionError:
            pytest.skip("sshd needs /run/sshd, which only root can create")
    base = tmp_path_factory.mktemp("sftp")
    home, ssh = base / "home", base / "home" / ".ssh"
    ssh.mkdir(parents=True)
    for key in (base / "host_key", ssh / "id_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    shutil.copy(ssh / "id_ed25519.pub", base / "authorized_keys")
    port = free_port()
    # as root (CI): no PAM, no strict modes on tmp paths, root may log in with its key
    (base / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {base / 'host_key'}\nPidFile {base / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {base / 'authorized_keys'}\nStrictModes no\nUsePAM no\nPermitRootLogin yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nSubsystem sftp internal-sftp\n")
    host_key = " ".join((base / "host_key.pub").read_text().split()[:2])
    (ssh / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key}\n")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    (ssh / "config").write_text(f"Host tinypipe-test-sftp\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n")
    log = base / "sshd.log"
    with open(log, "w") as out:
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(base / "sshd_config")], stdout=out, stderr=out)
    try:
        wait_for_port(port, process, log)
        yield {"url": f"sftp://tinypipe-test-sftp{base / 'remote'}", "dir": base / "remote",
               "env": {"HOME": str(home)}, "port": port}
    finally:
        stop(process)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """moto's S3 server on a free localhost port with one empty bucket; the AWS environment that points at it."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")
    port = free_port()
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=out, stderr=out)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        wait_for_port(port, process, log)
        import s3fs

        s3fs.S3FileSystem(client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]}, key="testing",
                          secret="testing").mkdir("team-cache")
        yield {"url": "s3://team-cache/tinypipe", "env": env}
    finally:
        stop(process)


# --- the first checkout -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def first(tmp_path_factory, sftp_server, s3_server):
    """The gesture example built once with a local-directory remote, then run against the SFTP and the S3
    remote: every stage is cached there, and each run pushes the entries its remote lacks."""
    base = tmp_path_factory.mktemp("first")
    project = fresh_example(GESTURE, base)
    local_remote = base / "remote"
    doc = run_json(project, "--remote-cache", str(local_remote))
    assert {s["status"] for s in doc["stages"]} <= {"ran", "cached"}  # the sysroot may come from the session
    for server in (sftp_server, s3_server):
        proc = tinypipe("run", str(project), "--remote-cache", server["url"], env=server["env"])
        assert proc.returncode == 0, proc.stderr
        assert f"0 stage(s) ran, {len(doc['stages'])} cached, 0 pulled from the remote cache, " \
               f"{len(doc['stages'])} pushed" in proc.stderr, proc.stderr
    return {"project": project, "doc": doc, "local_remote": local_remote}


def second_checkout(tmp_path: Path, url: str, env: dict | None = None, extra: str = "") -> tuple[Path, dict]:
    """A fresh copy of the project (no store, no lock) and an empty user-level cache, run against `url`."""
    project = fresh_example(GESTURE, tmp_path, "second", extra)
    env = {**(env or {}), "TINYPIPE_CACHE": str(tmp_path / "empty-user-cache"), ENV_VAR: url}
    proc = tinypipe("run", str(project), "--json", env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-6000:]}"
    return project, {"doc": json.loads(proc.stdout), "stderr": proc.stderr}


def assert_all_pulled_and_identical(first: dict, project: Path, run: dict) -> None:
    statuses = {(s["stage"], s["status"]) for s in run["doc"]["stages"]}
    assert statuses == {(s["stage"], "pulled") for s in first["doc"]["stages"]}, run["stderr"]
    assert run["doc"]["results"] == first["doc"]["results"]
    assert lock_outputs(project) == lock_outputs(first["project"])
    assert f"0 stage(s) ran, 0 cached, {len(statuses)} pulled from the remote cache" in run["stderr"]


@pytest.mark.slow
def test_a_second_checkout_pulls_every_stage_from_a_directory(first, tmp_path):
    fresh = fresh_example(GESTURE, tmp_path, "looking")
    shown = tinypipe("status", str(fresh), "--json", "--remote-cache", str(first["local_remote"]),
                     env={"TINYPIPE_CACHE": str(tmp_path / "empty-user-cache")})
    assert shown.returncode == 0, shown.stderr
    assert {s["state"] for s in json.loads(shown.stdout)} == {"remote"}  # every key found through the remote metas
    project, run = second_checkout(tmp_path, str(first["local_remote"]))
    assert_all_pulled_and_identical(first, project, run)
    assert "pulled in" in run["stderr"]  # progress names each pull
    sysroot, _ = lock_outputs(project)["mps2-an386-native"]["toolchain"]
    assert (tmp_path / "empty-user-cache" / "store" / sysroot / "meta.json").is_file()  # into the user-level cache
    keys = {key for stages in lock_outputs(project).values() for key, _ in stages.values()}
    assert all((first["local_remote"] / key / USED).is_file() for key in keys)  # each pull recorded, for gc


@pytest.mark.slow
def test_a_second_checkout_pulls_every_stage_over_http_and_pushes_nothing(first, tmp_path):
    """`http(s)://` reads only: a web server in front of a directory others push to."""
    served = tmp_path / "served"
    shutil.copytree(first["local_remote"], served)
    port = free_port()
    log = tmp_path / "http.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory",
                                    str(served), str(port)], stdout=out, stderr=out)
    try:
        wait_for_port(port, process, log)
        before = sorted(p.relative_to(served) for p in served.rglob("*"))
        project, run = second_checkout(tmp_path, f"http://127.0.0.1:{port}")
        assert_all_pulled_and_identical(first, project, run)
        shutil.rmtree(project / ".tinypipe" / "store")  # rebuilt here: an http remote cannot take it
        rebuilt = run_json(project, "--until", "data", env={ENV_VAR: f"http://127.0.0.1:{port}/nothing-here"})
        assert [s["status"] for s in rebuilt["stages"]] == ["ran"]
        assert sorted(p.relative_to(served) for p in served.rglob("*")) == before
    finally:
        stop(process)


def release_tarball(project: Path, out: Path, env: dict | None = None) -> bytes:
    proc = tinypipe("release", str(project), "--out", str(out), "--json", env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-6000:]}"
    return Path(json.loads(proc.stdout)["tarball"]).read_bytes()


def assert_same_release(first: dict, project: Path, tmp_path: Path, env: dict) -> None:
    """The second checkout's release, made from what it pulled, is the first checkout's to the byte."""
    if "release" not in first:
        first["release"] = release_tarball(first["project"], first["project"].parent / "first-release")
    assert release_tarball(project, tmp_path / "release", env) == first["release"]


@pytest.mark.slow
def test_a_second_checkout_pulls_every_stage_over_sftp(first, sftp_server, tmp_path):
    project, run = second_checkout(tmp_path, sftp_server["url"], sftp_server["env"])
    assert_all_pulled_and_identical(first, project, run)
    assert_same_release(first, project, tmp_path, {**sftp_server["env"],
                                                    "TINYPIPE_CACHE": str(tmp_path / "empty-user-cache")})
    leftovers = [p.name for p in sftp_server["dir"].iterdir() if p.name.startswith(".")]
    assert leftovers == [], "an upload left its temporary directory behind"
    keys = {key for stages in lock_outputs(project).values() for key, _ in stages.values()}
    assert all((sftp_server["dir"] / key / USED).is_file() for key in keys)  # each pull recorded, for gc


@pytest.mark.slow
def test_a_second_checkout_pulls_every_stage_over_s3(first, s3_server, tmp_path):
    project, run = second_checkout(tmp_path, s3_server["url"], s3_server["env"])
    assert_all_pulled_and_identical(first, project, run)
    assert_same_release(first, project, tmp_path, {**s3_server["env"],
                                                    "TINYPIPE_CACHE": str(tmp_path / "empty-user-cache")})


@pytest.mark.slow
def test_a_tampered_remote_entry_is_ignored_rebuilt_and_pushed_over(first, sftp_server, tmp_path):
    """Over SFTP, on a copy of the server's cache: the good entry is renamed over the bad one."""
    remote = sftp_server["dir"].parent / "tampered"
    shutil.copytree(sftp_server["dir"], remote)
    url = f"sftp://tinypipe-test-sftp{remote}"
    key, _ = lock_outputs(first["project"])["mps2-an386-native"]["codegen"]
    artifact = remote / key / "model.rs"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artifact.write_bytes(bytes(data))

    project, run = second_checkout(tmp_path, url, sftp_server["env"])
    statuses = {s["stage"]: s["status"] for s in run["doc"]["stages"]}
    assert statuses.pop("codegen") == "ran", run["stderr"]
    assert set(statuses.values()) == {"pulled"}, run["stderr"]  # same output rebuilt: downstream keys hold
    assert (f"warning: remote cache {url}: codegen entry {key[:12]}… ignored, its files do not match the hash "
            "its meta.json records; building it locally and pushing it over") in run["stderr"]
    assert run["doc"]["results"] == first["doc"]["results"]
    assert lock_outputs(project) == lock_outputs(first["project"])
    assert "1 pushed" in run["stderr"]
    assert artifact.read_bytes() != bytes(data)  # the good entry replaced it
    assert [p.name for p in remote.iterdir() if p.name.startswith(".")] == []  # nothing left aside
    assert RemoteCache(str(remote)).pull(key, tmp_path / "check")


@pytest.mark.slow
def test_a_rehashed_forgery_is_caught_by_the_lock(first, tmp_path):
    """A forger who also rewrites meta.json's hash passes the entry's own check, not the committed lock's."""
    from tinypipe.core.hashing import sha256_tree

    remote = tmp_path / "remote"
    shutil.copytree(first["local_remote"], remote)
    key, locked_output = lock_outputs(first["project"])["mps2-an386-native"]["codegen"]
    entry = remote / key
    (entry / "model.rs").write_text((entry / "model.rs").read_text() + "\n// forged\n")
    meta = json.loads((entry / "meta.json").read_text())
    # over the files meta.json lists, as a pull hashes them (not the `.used` record of earlier pulls)
    meta["output"] = sha256_tree(entry, exclude=frozenset({"meta.json", "log.txt", USED}))
    (entry / "meta.json").write_text(json.dumps(meta))

    warnings = []
    cache = RemoteCache(str(remote), warn=warnings.append)
    assert cache.pull(key, tmp_path / "unlocked")  # consistent in itself
    assert not cache.pull(key, tmp_path / "locked", expected_output=locked_output)
    assert warnings == [f"remote cache {remote}: codegen entry {key[:12]}… ignored, its output "
                        f"{meta['output'][:12]}… is not the {locked_output[:12]}… tinypipe.lock records; "
                        "building it locally and pushing it over"]


# --- without the gesture build ------------------------------------------------------------------------------------

def test_push_false_pulls_but_pushes_nothing(tmp_path):
    remote = tmp_path / "remote"
    remote.mkdir()
    project = fresh_example(GESTURE, tmp_path, extra="\ncache:\n  remote: ../remote\n  push: false\n")
    doc = run_json(project, "--until", "data")
    assert [s["status"] for s in doc["stages"]] == ["ran"]
    assert list(remote.iterdir()) == []
    assert run_json(project, "--until", "data", "--remote-cache", "")["stages"][0]["status"] == "cached"
    # the same project pushing: the entry lands where `../remote` points, beside the project
    (project / "project.yaml").write_text((project / "project.yaml").read_text().replace("push: false", "push: true"))
    run_json(project, "--until", "data")
    assert [p.name for p in remote.iterdir()] == [lock_outputs(project)["mps2-an386-native"]["data"][0]]


def test_an_unreachable_remote_warns_once_and_the_run_succeeds(tmp_path):
    closed = free_port()  # nothing listens there
    project = fresh_example(GESTURE, tmp_path)
    proc = tinypipe("run", str(project), "--until", "data", "--remote-cache", f"sftp://127.0.0.1:{closed}/cache")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("warning: remote cache") == 1, proc.stderr
    assert (f"warning: remote cache sftp://127.0.0.1:{closed}/cache: could not look up entry "
            in proc.stderr), proc.stderr
    assert "continuing with the local store only for the rest of this run" in proc.stderr
    assert "1 stage(s) ran, 0 cached, 0 pulled from the remote cache" in proc.stderr


def test_a_password_in_project_yaml_is_refused_without_echoing_it(tmp_path):
    project = fresh_example(GESTURE, tmp_path, extra="\ncache:\n  remote: sftp://alice:hunter2@cache.example/x\n")
    line = (project / "project.yaml").read_text().splitlines().index(
        "  remote: sftp://alice:hunter2@cache.example/x") + 1
    proc = tinypipe("status", str(project))
    assert proc.returncode == 2
    assert (f"project.yaml:{line}:11 cache.remote: the URL holds a password (`user:password@`), and project.yaml "
            "is shared") in proc.stderr, proc.stderr
    assert "remove `:password` from the URL" in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout


def test_the_flag_beats_the_environment_which_beats_project_yaml(tmp_path):
    config = {"cache": {"remote": "s3://from-yaml"}}
    assert choose_url("s3://from-flag", {ENV_VAR: "s3://from-env"}, config, tmp_path) == "s3://from-flag"
    assert choose_url(None, {ENV_VAR: "s3://from-env"}, config, tmp_path) == "s3://from-env"
    assert choose_url(None, {}, config, tmp_path) == "s3://from-yaml"
    assert choose_url("", {ENV_VAR: "s3://from-env"}, config, tmp_path) is None  # an empty flag turns it off
    assert choose_url(None, {}, {}, tmp_path) is None
    # a plain path in project.yaml is relative to it, like every other path there
    assert choose_url(None, {}, {"cache": {"remote": "../team"}}, tmp_path) == str(tmp_path / "../team")


def test_a_printed_url_hides_its_password():
    warnings = []
    cache = RemoteCache("sftp://bob:s3cret@127.0.0.1:1/x", warn=warnings.append)
    assert cache.name == "sftp://bob:***@127.0.0.1:1/x"
    assert not cache.has("0" * 64)
    assert len(warnings) == 1 and "s3cret" not in warnings[0]


def test_s3_replaces_an_entry_marker_last(s3_server, tmp_path, monkeypatch):
    """On S3 (no rename) the old marker goes first and the new one comes last: a reader in between finds no
    entry, and the replaced entry verifies."""
    for name, value in s3_server["env"].items():
        monkeypatch.setenv(name, value)
    entry = tmp_path / "entry"
    entry.mkdir()
    (entry / "a.bin").write_bytes(b"good")
    from tinypipe.engine.store import Store

    store = Store(tmp_path / "store")
    tmp = store.begin()
    (tmp / "a.bin").write_bytes(b"good")
    (tmp / "sub").mkdir()
    (tmp / "sub" / "b.txt").write_text("nested")
    key = "k" * 64
    meta = store.commit(tmp, key, {"stage": "demo"})
    cache = RemoteCache(s3_server["url"] + "/marker-test")
    assert cache.push(key, store.path(key))

    fs = cache._connect()
    fs.pipe(cache._path(key, "a.bin"), b"evil")  # tampered in place
    warnings = []
    cache.warn = warnings.append
    assert not cache.pull(key, tmp_path / "pulled-bad")
    assert "its files do not match the hash its meta.json records" in warnings[0]

    assert cache.push(key, store.path(key))
    assert cache.pull(key, tmp_path / "pulled")
    assert (tmp_path / "pulled" / "sub" / "b.txt").read_text() == "nested"
    assert json.loads((tmp_path / "pulled" / "meta.json").read_text())["output"] == meta["output"]


@pytest.mark.slow
def test_a_no_op_run_without_a_remote_never_imports_fsspec(first, tmp_path):
    poison = tmp_path / "poison" / "fsspec"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('fsspec was imported without a remote cache')\n")
    path = os.pathsep.join(p for p in (str(poison.parent), os.environ.get("PYTHONPATH")) if p)
    doc = run_json(first["project"], env={"PYTHONPATH": path})
    assert {s["status"] for s in doc["stages"]} == {"cached"}


# --- gc --remote ----------------------------------------------------------------------------------------------------

DAY = 86_400


def fake_entry(root: Path, key: str, age_days: float, used_days: float | None = None, marker: bool = True) -> None:
    """An entry directory under a path remote, its files `age_days` old (its last pull `used_days` ago)."""
    entry = root / key
    entry.mkdir(parents=True)
    (entry / "payload.bin").write_bytes(b"x" * 1000)
    if marker:
        (entry / "meta.json").write_text(json.dumps({"key": key, "stage": "fake", "output": "0" * 64, "files": {}}))
    if used_days is not None:
        (entry / USED).write_text("0\n")
    for path in entry.iterdir():
        age = used_days if path.name == USED else age_days
        os.utime(path, (time.time() - age * DAY, time.time() - age * DAY))


def age_all(root: Path, days: float) -> None:
    for path in root.rglob("*"):
        os.utime(path, (time.time() - days * DAY, time.time() - days * DAY))


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["path", "sftp"])
def test_gc_remote_prunes_what_nobody_used_and_keeps_the_locked_the_recent_and_foreign_files(first, sftp_server,
                                                                                             tmp_path, protocol):
    remote = (sftp_server["dir"].parent if protocol == "sftp" else tmp_path) / f"gc-{protocol}-{tmp_path.name}"
    shutil.copytree(first["local_remote"], remote)
    age_all(remote, 90)  # the project's entries: pushed long ago, never pulled since
    old, pulled, fresh = "a" * 64, "b" * 64, "c" * 64
    fake_entry(remote, old, 40)
    fake_entry(remote, pulled, 40, used_days=2)  # pushed long ago, pulled two days ago
    fake_entry(remote, fresh, 1)
    fake_entry(remote, "d" * 64, 3, marker=False)  # an S3-style upload that stopped: no marker, 3 days old
    fake_entry(remote, "e" * 64, 0.01, marker=False)  # perhaps in flight
    (remote / ".tmp-0123").mkdir()
    (remote / ".tmp-0123" / "part").write_bytes(b"y")
    age_all(remote / ".tmp-0123", 2)
    (remote / "NOTES.txt").write_text("the team's notes, not tinypipe's")
    (remote / "backup").mkdir()
    (remote / "backup" / "meta.json").write_text("{}")
    age_all(remote / "backup", 400)
    url = f"sftp://tinypipe-test-sftp{remote}" if protocol == "sftp" else str(remote)
    env = sftp_server["env"] if protocol == "sftp" else {}
    project_keys = {key for stages in lock_outputs(first["project"]).values() for key, _ in stages.values()}

    dry = tinypipe("gc", str(first["project"]), "--remote", url, "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    listed = json.loads(dry.stdout)
    assert {e["key"] for e in listed["deleted"]} == {old, "d" * 64, ".tmp-0123"}
    assert listed["kept_locked"] == len(project_keys) and listed["dry_run"] is True
    assert {p.name for p in remote.iterdir()} >= {old, "d" * 64, ".tmp-0123"}  # a dry run deletes nothing

    done = tinypipe("gc", str(first["project"]), "--remote", url, env=env)
    assert done.returncode == 0, done.stderr
    assert f"deleted 3 entries" in done.stdout and f"{len(project_keys)} of them in" in done.stdout, done.stdout
    left = {p.name for p in remote.iterdir()}
    assert left == project_keys | {pulled, fresh, "e" * 64, "NOTES.txt", "backup"}

    # from outside the project nothing is locked: its entries, unused for 90 days, go at --days 30
    elsewhere = tinypipe("gc", "--remote", url, "--json", env=env, cwd=tmp_path)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert {e["key"] for e in json.loads(elsewhere.stdout)["deleted"]} == project_keys
    assert {p.name for p in remote.iterdir()} == {pulled, fresh, "e" * 64, "NOTES.txt", "backup"}


@pytest.mark.slow
def test_gc_remote_on_s3_deletes_unlocked_entries_marker_first_and_a_later_run_still_pulls(first, s3_server,
                                                                                          tmp_path):
    import s3fs

    url = f"{s3_server['url']}-gc"
    push = tinypipe("run", str(first["project"]), "--remote-cache", url, env=s3_server["env"])
    assert push.returncode == 0, push.stderr
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_server["env"]["AWS_ENDPOINT_URL"]}, key="testing",
                           secret="testing")
    root = url.removeprefix("s3://")
    stray = "f" * 64
    fs.pipe(f"{root}/{stray}/payload.bin", b"z" * 10)
    fs.pipe(f"{root}/{stray}/meta.json", json.dumps({"key": stray, "stage": "stray"}).encode())
    fs.pipe(f"{root}/{'9' * 64}/payload.bin", b"half")  # an upload in flight: no marker yet, just written
    project_keys = {key for stages in lock_outputs(first["project"]).values() for key, _ in stages.values()}

    done = tinypipe("gc", str(first["project"]), "--remote", url, "--days", "0", "--json", env=s3_server["env"])
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [(e["key"], e["stage"]) for e in report["deleted"]] == [(stray, "stray")]
    assert report["kept"] == len(project_keys) + 1 and report["kept_locked"] == len(project_keys)
    assert not fs.exists(f"{root}/{stray}/meta.json") and not fs.exists(f"{root}/{stray}/payload.bin")
    assert fs.exists(f"{root}/{'9' * 64}/payload.bin")
    project, run = second_checkout(tmp_path, url, s3_server["env"])  # what gc kept is whole: everything pulls
    assert_all_pulled_and_identical(first, project, run)
    assert all(fs.exists(f"{root}/{key}/{USED}") for key in project_keys)


def test_gc_remote_without_a_remote_or_through_http_is_exit_2_with_the_fix(tmp_path):
    nothing = tinypipe("gc", "--remote", env={ENV_VAR: ""}, cwd=tmp_path)
    assert nothing.returncode == 2 and "no remote cache to prune" in nothing.stderr
    assert "tinypipe gc --remote s3://bucket/prefix" in nothing.stderr
    http = tinypipe("gc", "--remote", "http://127.0.0.1:1/cache", cwd=tmp_path)
    assert http.returncode == 2 and "read only" in http.stderr, http.stderr
    both = tinypipe("gc", "--remote", "x", "--cache", cwd=tmp_path)
    assert both.returncode == 2 and "one at a time" in both.stderr
    down = tinypipe("gc", "--remote", "sftp://127.0.0.1:1/nowhere", cwd=tmp_path)
    assert down.returncode == 2 and "check the URL and its credentials" in down.stderr, down.stderr
    assert "Traceback" not in down.stderr
