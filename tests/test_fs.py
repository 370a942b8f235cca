"""Atomic writes respect the umask: a team sharing a project or a cache needs the files readable by the group."""

import os
import stat
import subprocess
import sys

import pytest

import tinypipe.core.fs as fs


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_write_gives_the_mode_open_would(tmp_path, monkeypatch, umask, mode):
    old = os.umask(umask)
    monkeypatch.setattr(fs, "_UMASK", None)
    try:
        fs.atomic_write_text(tmp_path / "f.txt", "x")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == mode == stat.S_IMODE(plain.stat().st_mode)


def test_init_writes_project_yaml_with_the_users_umask(tmp_path):
    proc = subprocess.run(["sh", "-c", f"umask 022 && {sys.executable} -m tinypipe init {tmp_path / 'p'}"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE((tmp_path / "p" / "project.yaml").stat().st_mode) == 0o644
