"""Config errors name file:line:col and the key path, give a hint, and exit 2. The messages are pinned."""

import subprocess
import textwrap

import pytest

from tests.helpers import GESTURE, tinypipe_cmd
from tinypipe.config.loader import ConfigError, load_project
from tinypipe.config.matrix import expand

GOOD_MODEL = """\
model:
  layers:
    - {type: dense, units: 3}
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # messages name files relative to the working directory


def write(tmp_path, text):
    (tmp_path / "project.yaml").write_text(textwrap.dedent(text))
    return tmp_path


def error_of(tmp_path, text) -> str:
    with pytest.raises(ConfigError) as info:
        load_project(write(tmp_path, text))
    return str(info.value)


def test_gesture_example_loads_with_defaults():
    project, path = load_project(GESTURE)
    assert project.name == "gesture"
    (variant,) = expand(project.model_dump(mode="json"))
    assert variant.name == "mps2-an386-native"
    assert variant.triple == "thumbv7em-none-eabihf" and variant.cpu == "cortex-m4"


def test_bad_indentation(tmp_path):
    msg = error_of(tmp_path, """\
        name: demo
        model:
          layers:
            - {type: dense, units: 3}
          epochs: 5
           learning_rate: 0.1
        """)
    assert msg.startswith("project.yaml:6:17 invalid YAML: mapping values are not allowed here")
    assert "hint: check the indentation" in msg


# (project.yaml, the first line of the error, a part of its hint or None): each message is pinned
ERRORS = {
    "unknown key, did you mean": (
        "name: demo\nmodel:\n  layers:\n    - {type: dense, units: 3}\n  epoch: 5\n",
        "project.yaml:5:3 model.epoch: unknown key", "did you mean `epochs`?"),
    "unknown top-level section": (
        "name: demo\n" + GOOD_MODEL + "quantisation:\n  io: int8\n",
        "project.yaml:5:1 quantisation: unknown key", "did you mean `quantization`?"),
    "unknown layer type": (
        "name: demo\nmodel:\n  layers:\n    - {type: lstm, units: 3}\n",
        "project.yaml:4:7 model.layers[0]: unknown layer type 'lstm'; expected one of 'conv1d', 'maxpool1d', "
        "'avgpool1d', 'flatten', 'dense', 'dropout'", None),
    "unknown board": (
        "name: demo\n" + GOOD_MODEL + "target:\n  board: mps2-an368\n",
        "project.yaml:6:10 target.board: unknown board 'mps2-an368'",
        "hint: did you mean `mps2-an386`? known boards: mps2-an385, mps2-an386"),
    "unknown board in the matrix": (
        "name: demo\n" + GOOD_MODEL + "matrix:\n  board: [mps2-an386, nucleo]\n",
        "project.yaml:6:23 matrix.board[1]: unknown board 'nucleo'", None),
    "missing required section": ("name: demo\n", "project.yaml:1:1 model: required key is missing", "add `model:` here"),
    "duplicate key": (
        "name: demo\n" + GOOD_MODEL + "name: other\n", "project.yaml:5:1 name: duplicate key (first given at line 1)",
        None),
    "split must sum to one": (
        "name: demo\n" + GOOD_MODEL + "data:\n  split: {train: 0.8, val: 0.2, test: 0.2}\n",
        "project.yaml:6:10 data.split: train + val + test must be 1.0, got 1.2", None),
    "csv without a folder": (
        "name: demo\n" + GOOD_MODEL + "data:\n  source: csv\n",
        "project.yaml:6:3 data: `source: csv` needs `path`, the folder of recordings", None),
    "a csv option on generated data": (
        "name: demo\n" + GOOD_MODEL + "data:\n  hop: 8\n",
        "project.yaml:6:3 data: `source: generator` reads none of `path`, `hop` and `short`", None),
    "negative seed": ("name: demo\nseed: -1\n" + GOOD_MODEL, "project.yaml:2:7 seed: Input should be greater than or "
                      "equal to 0 (got -1)", None),
    "infinite learning rate": ("name: demo\n" + GOOD_MODEL + "  learning_rate: .inf\n",
                               "project.yaml:5:18 model.learning_rate: Input should be a finite number (got inf)",
                               None),
    "a crate name outside Cargo's grammar": (
        "name: demo\n" + GOOD_MODEL + "hal:\n  - {crate: 'evil = 1', version: '0.1'}\n",
        "project.yaml:6:13 hal[0].crate: String should match pattern '^[A-Za-z][A-Za-z0-9_-]{0,63}$' (got 'evil = 1')",
        None),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_config_errors_name_the_place_and_help(tmp_path, case):
    text, first_line, hint = ERRORS[case]
    msg = error_of(tmp_path, text)
    assert msg.splitlines()[0] == first_line
    if hint is not None:
        assert hint in msg


def test_wrong_type_in_a_layer(tmp_path):
    msg = error_of(tmp_path, """\
        name: demo
        model:
          layers:
            - {type: conv1d, filters: 8, kernel_size: 5}
            - type: dense
              units: many
        """)
    assert msg.splitlines()[0] == (
        "project.yaml:6:14 model.layers[1].units: Input should be a valid integer, "
        "unable to parse string as an integer (got 'many')")


def test_extends_merges_and_reports_the_right_file(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\n" + GOOD_MODEL + "quantization:\n  representative_samples: 10\n")
    (tmp_path / "project.yaml").write_text("extends: base.yaml\nname: child\nquantization:\n  io: float32\n")
    project, _ = load_project(tmp_path)
    assert project.name == "child"
    assert project.quantization.io == "float32" and project.quantization.representative_samples == 10
    (tmp_path / "base.yaml").write_text("name: base\n" + GOOD_MODEL + "seed: lots\n")
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path)
    assert str(info.value).startswith("base.yaml:5:7 seed: Input should be a valid integer")


def test_validated_config_is_cached_until_a_file_changes(tmp_path):
    from tinypipe.config.loader import load_config

    (tmp_path / "base.yaml").write_text("name: base\n" + GOOD_MODEL)
    write(tmp_path, "extends: base.yaml\nseed: 3\n")
    state = tmp_path / ".tinypipe"
    config, _ = load_config(tmp_path, state)
    assert config["seed"] == 3 and (state / "config.json").is_file()
    cached = (state / "config.json").read_text()
    assert load_config(tmp_path, state)[0] == config
    assert (state / "config.json").read_text() == cached  # a hit rewrites nothing
    (tmp_path / "base.yaml").write_text("name: base\nseed: 1\n" + GOOD_MODEL.replace("units: 3", "units: 4"))
    config, _ = load_config(tmp_path, state)  # an extended file changed: validated again
    assert config["model"]["layers"][0]["units"] == 4 and config["seed"] == 3
    (tmp_path / "base.yaml").write_text("name: base\nengine: x\n" + GOOD_MODEL)
    with pytest.raises(ConfigError):
        load_config(tmp_path, state)  # never served from the cache once invalid


def test_hal_takes_one_crate_or_a_list(tmp_path):
    one, _ = load_project(write(tmp_path, "name: demo\n" + GOOD_MODEL + "hal: {crate: stm32f4xx-hal, version: '0.21'}\n"))
    assert [c.crate for c in one.hal] == ["stm32f4xx-hal"]
    many, _ = load_project(write(tmp_path, "name: demo\n" + GOOD_MODEL + "hal:\n"
                                 "  - {crate: stm32f4xx-hal, version: '0.21', features: [stm32f407]}\n"
                                 "  - {crate: cortex-m-rt, version: '0.7'}\n"))
    assert [c.crate for c in many.hal] == ["stm32f4xx-hal", "cortex-m-rt"]
    msg = error_of(tmp_path, "name: demo\n" + GOOD_MODEL + "hal:\n  - {crate: cortex-m-rt}\n")
    assert msg.splitlines()[0] == "project.yaml:6:5 hal[0].version: required key is missing"


def test_cli_exit_code_2_and_nothing_written(tmp_path):
    write(tmp_path, "name: demo\n" + GOOD_MODEL + "target:\n  board: nope\n")
    proc = subprocess.run(tinypipe_cmd() + ["run", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "project.yaml:6:10 target.board: unknown board 'nope'" in proc.stderr
    assert not (tmp_path / ".tinypipe").exists() and not (tmp_path / "tinypipe.lock").exists()
