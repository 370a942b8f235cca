"""Config files downloaded from anywhere: every broken or hostile project.yaml ends in exit 2 with a message that
names the place, in bounded time and memory — never a traceback, a hang or an echo of a file that is not ours."""

import io
import os
import re
import contextlib
from pathlib import Path

import pytest

from tests.helpers import GESTURE
from tinypipe.cli import main

VALID = (GESTURE / "project.yaml").read_text()


def with_seed(value: str) -> str:
    text = re.sub(r"(?m)^seed: .*$", f"seed: {value}", VALID)
    assert f"seed: {value}" in text
    return text


def alias_bomb(levels: int = 7) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * 9) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\nname: bomb\n"


CASES = {
    "alias bomb": (alias_bomb(), "expands to more than"),
    "nesting 600 deep": ("name: deep\nx: " + "[" * 600 + "]" * 600 + "\n", "nested"),
    "recursive alias": ("name: r\nx: &a [*a]\n", "nested more than"),
    "NUL character": ("name: a\x00b\n", "project.yaml:1:8"),
    "control character": ("name: ok\nseed: \x07\n", "invalid character"),
    "not UTF-8": (b"name: caf\xe9\n", "project.yaml:1:10 not UTF-8"),
    "int tag on a word": (with_seed("!!int seven"), "cannot read this int value"),
    "5000-digit integer": (with_seed("9" * 5000), "seed"),
    "python object tag": ("name: x\nseed: !!python/object/apply:os.system [true]\n", "unsupported YAML tag"),
    "python scalar tag": ("name: !!python/name:os.system x\n", "invalid YAML"),
    "empty file": ("", "the file is empty"),
    "a list at the top": ("- 1\n- 2\n", "must be a mapping"),
    "extends .": ("extends: .\n" + VALID, "not a YAML file"),
    "extends /": ("extends: /\n" + VALID, "not a YAML file"),
    "extends /dev/zero": ("extends: /dev/zero\n" + VALID, "not a YAML file"),
    "extends /proc/self/mem": ("extends: /proc/self/mem\n" + VALID, "not a YAML file"),
    "extends /etc/shadow": ("extends: /etc/shadow\n" + VALID, "not a YAML file"),
    "extends a directory named .yaml": ("extends: dir.yaml\n" + VALID, "is a directory"),
    "extends a fifo": ("extends: pipe.yaml\n" + VALID, "not a regular file"),
    "extends itself": ("extends: project.yaml\n" + VALID, "a cycle"),
    "a sweep of 10^12 cells": (VALID + "matrix:\n" + "".join(
        f"  {key}: [{', '.join(str(i) for i in range(1, 1001))}]\n"
        for key in ("model.epochs", "model.batch_size", "sensor.window", "data.samples_per_class")),
        "matrix: makes 1,000,000,000,000 variants; at most 1,024"),
    # explicit keys (`? key`): a plain YAML key is at most 1,024 characters
    "a sweep path 10,000 indexes deep": (VALID + "matrix:\n  ? model.layers" + "[0]" * 10_000 + "\n  : [1]\n",
                                         "a key path of 30,012 characters"),
    "a sweep path 50 indexes deep": (VALID + "matrix:\n  model.layers" + "[0]" * 50 + ": [1]\n",
                                     "model.layers[0] is not a list"),
    "a sweep key of 100,000 characters": (VALID + "matrix:\n  ? " + "a" * 100_000 + "\n  : [1]\n",
                                          "a key path of 100,000 characters"),
    "a sweep of the matrix itself": (VALID + "matrix:\n  matrix.board: [[mps2-an385]]\n", "cannot sweep itself"),
}


def status(project: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["status", str(project)])
    return code, err.getvalue()


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_config_is_exit_2_with_its_place(tmp_path, monkeypatch, name):
    content, expected = CASES[name]
    (tmp_path / "project.yaml").write_bytes(content if isinstance(content, bytes) else content.encode())
    (tmp_path / "dir.yaml").mkdir()
    os.mkfifo(tmp_path / "pipe.yaml")
    monkeypatch.chdir(tmp_path)
    code, err = status(tmp_path)
    assert code == 2, err
    assert expected in err, err
    assert "Traceback" not in err
    if "shadow" in name:
        assert "root" not in err  # never the content of a file that is not ours


def test_project_yaml_that_is_a_directory_or_a_symlink_loop(tmp_path):
    (tmp_path / "a" / "project.yaml").mkdir(parents=True)
    code, err = status(tmp_path / "a")
    assert code == 2 and "is a directory" in err
    loop = tmp_path / "b"
    loop.mkdir()
    os.symlink(loop / "project.yaml", loop / "project.yaml")
    code, err = status(loop)
    assert code == 2 and "cannot read the project file" in err, err


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    with open(tmp_path / "project.yaml", "w") as f:
        f.write(VALID)
        f.write("#" * (2 << 20))
    code, err = status(tmp_path)
    assert code == 2 and "a project file is at most" in err
