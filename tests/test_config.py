"""Config errors name file:line:col and the key path, give a hint, and exit 2. The messages are pinned."""

import re
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
    "a choice under another name": (
        "name: demo\n" + GOOD_MODEL + "native:\n  optimize: fast\n",
        "project.yaml:6:13 native.optimize: Input should be 'speed', 'balanced', 'ram' or 'size' (got 'fast')",
        "hint: did you mean `speed`?"),
    "a misspelt choice": (
        "name: demo\n" + GOOD_MODEL + "engine: natve\n",
        "project.yaml:5:9 engine: Input should be 'native' or 'tflm' (got 'natve')", "did you mean `native`?"),
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
    "duplicate engine in the matrix": (
        "name: demo\n" + GOOD_MODEL + "matrix:\n  engine: [native, native]\n",
        "project.yaml:6:20 matrix.engine[1]: 'native' is listed twice (first as matrix.engine[0])", "remove one"),
    "a sweep value the schema refuses": (
        "name: demo\n" + GOOD_MODEL + "matrix:\n  model.epochs: [10, 0]\n",
        'project.yaml:6:22 matrix."model.epochs"[1]: model.epochs: Input should be greater than or equal to 1 (got 0)',
        None),
    "a sweep over an unknown key": (
        "name: demo\n" + GOOD_MODEL + "matrix:\n  model.epoch: [10]\n",
        'project.yaml:6:3 matrix."model.epoch": no such key in a project: `model.epoch` is unknown',
        "did you mean `epochs`?"),
    "a sweep past the end of a list": (
        "name: demo\n" + GOOD_MODEL + "matrix:\n  model.layers[3].units: [4]\n",
        'project.yaml:6:3 matrix."model.layers[3].units": no such key in this project: model.layers has 1 item, no [3]',
        None),
    "a sweep key that is no key path": (
        "name: demo\n" + GOOD_MODEL + "matrix:\n  model/epochs: [10]\n",
        'project.yaml:6:3 matrix.model/epochs: not a key path of project.yaml', "model.layers[0].filters"),
    "a typo of board in the matrix": (
        "name: demo\n" + GOOD_MODEL + "matrix:\n  boards: [mps2-an386]\n",
        "project.yaml:6:3 matrix.boards: no such key in a project: `boards` is unknown", "did you mean `board`?"),
    "a sweep that is not a list": (
        "name: demo\n" + GOOD_MODEL + "matrix:\n  model.epochs: 10\n",
        'project.yaml:6:17 matrix."model.epochs": Input should be a valid list (got 10)', None),
    "a sweep value listed twice once validated": (
        "name: demo\n" + GOOD_MODEL + "matrix:\n  sensor.sample_rate_hz: [50, 50.0]\n",
        'project.yaml:6:31 matrix."sensor.sample_rate_hz"[1]: 50.0 is listed twice (first as '
        'matrix."sensor.sample_rate_hz"[0])', None),
    "sweeps fine alone but not together": (
        "name: demo\n" + GOOD_MODEL + "matrix:\n  data.split.train: [0.6, 0.7]\n  data.split.val: [0.25, 0.15]\n",
        'project.yaml:7:26 matrix."data.split.val"[1]: data.split: train + val + test must be 1.0, got 0.9 '
        "(with data.split.train = 0.6)", None),
    "missing required section": ("name: demo\n", "project.yaml:1:1 model: required key is missing", "add `model:` here"),
    "duplicate key": (
        "name: demo\n" + GOOD_MODEL + "name: other\n", "project.yaml:5:1 name: duplicate key (first given at line 1)",
        None),
    "split must sum to one": (
        "name: demo\n" + GOOD_MODEL + "data:\n  split: {train: 0.8, val: 0.2, test: 0.2}\n",
        "project.yaml:6:10 data.split: train + val + test must be 1.0, got 1.2", None),
    "csv without a folder": (
        "name: demo\n" + GOOD_MODEL + "data:\n  source: csv\n",
        "project.yaml:6:11 data.source: `source: csv` needs `path`, the folder of recordings", None),
    "a csv option on generated data": (
        "name: demo\n" + GOOD_MODEL + "data:\n  hop: 8\n",
        "project.yaml:6:8 data.hop: `source: generator` reads none of `path`, `hop` and `short`", None),
    "negative seed": ("name: demo\nseed: -1\n" + GOOD_MODEL, "project.yaml:2:7 seed: Input should be greater than or "
                      "equal to 0 (got -1)", None),
    "infinite learning rate": ("name: demo\n" + GOOD_MODEL + "  learning_rate: .inf\n",
                               "project.yaml:5:18 model.learning_rate: Input should be a finite number (got inf)",
                               None),
    "an optimize mode the native engine does not have": (
        "name: demo\n" + GOOD_MODEL + "native:\n  optimize: fast\n",
        "project.yaml:6:13 native.optimize: Input should be 'speed', 'balanced', 'ram' or 'size' (got 'fast')", None),
    "a misspelt optimize": (
        "name: demo\n" + GOOD_MODEL + "native:\n  optimise: size\n",
        "project.yaml:6:3 native.optimise: unknown key", "did you mean `optimize`?"),
    "a sweep over an optimize mode the native engine does not have": (
        "name: demo\n" + GOOD_MODEL + "matrix:\n  native.optimize: [speed, tiny]\n",
        'project.yaml:6:28 matrix."native.optimize"[1]: native.optimize: Input should be \'speed\', \'balanced\', '
        "'ram' or 'size' (got 'tiny')", None),
    "a crate name outside Cargo's grammar": (
        "name: demo\n" + GOOD_MODEL + "hal:\n  - {crate: 'evil = 1', version: '0.1'}\n",
        "project.yaml:6:13 hal[0].crate: String should match pattern '^[A-Za-z][A-Za-z0-9_-]{0,63}$' (got 'evil = 1')",
        None),
    # checks across sections point at the key the user wrote, not at the document or the section
    "a scaling for generated data": (
        "name: demo\n" + GOOD_MODEL + "data:\n  classes: [a, b]\n  normalize: standard\n",
        "project.yaml:7:14 data.normalize: a declared input scaling (`sensor.scale`/`sensor.offset`, "
        "`data.normalize`) needs your own raw recordings (`data.source: csv`, `wav` or `npz`) and "
        "`quantization.io: int8`", None),
    "wav from an accelerometer": (
        "name: demo\n" + GOOD_MODEL + "sensor:\n  kind: accelerometer\ndata: {source: wav, path: rec}\n",
        "project.yaml:6:9 sensor.kind: `data.source: wav` needs `sensor.kind: microphone` and one axis (got kind "
        "'accelerometer' with 3 axes), e.g. `axes: [mic]`", None),
    "wav with the default sensor": (
        "name: demo\n" + GOOD_MODEL + "data: {source: wav, path: rec}\n",
        "project.yaml:5:16 data.source: `data.source: wav` needs `sensor.kind: microphone` and one axis (got kind "
        "'accelerometer' with 3 axes), e.g. `axes: [mic]`", None),
    "one scale per axis": (
        "name: demo\n" + GOOD_MODEL + "sensor:\n  axes: [x, y, z]\n  scale: [1, 2]\n",
        "project.yaml:7:10 sensor.scale: `sensor.scale` has 2 values for 3 axes: give one per axis, or one "
        "number for all", None),
    "layers and a path": (
        "name: demo\n" + GOOD_MODEL + "  path: m.keras\n",
        "project.yaml:5:9 model.path: give exactly one of `layers` or `path`", None),
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


SWEEP = "name: demo\nmodel:\n  layers:\n    - {type: conv1d, filters: 8, kernel_size: 3}\n    - {type: flatten}\n" \
        "    - {type: dense, units: 3}\n"


def test_a_sweep_expands_into_the_product_with_readable_unique_names(tmp_path):
    project, _ = load_project(write(tmp_path, SWEEP + "matrix:\n  board: [mps2-an385, mps2-an386]\n"
                                    "  model.epochs: [10, 30]\n  model.layers[0].filters: [8, 16]\n"
                                    "  quantization.io: [int8, float32]\n"))
    variants = expand(project.model_dump(mode="json"))
    names = [v.name for v in variants]
    assert len(names) == len(set(names)) == 2 * 2 * 2 * 2
    assert names[0] == "mps2-an385-native-epochs10-layers0.filters8-io_int8"
    assert names[-1] == "mps2-an386-native-epochs30-layers0.filters16-io_float32"
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", n) and len(n) <= 120 for n in names)
    cell = variants[-1]
    assert cell.sweep == {"model.epochs": 30, "model.layers[0].filters": 16, "quantization.io": "float32"}
    assert cell.config["model"]["epochs"] == 30 and cell.config["model"]["layers"][0]["filters"] == 16
    assert cell.config["quantization"]["io"] == "float32" and cell.board.name == "mps2-an386"
    assert cell.project.model.layers[0].filters == 16  # each cell is a valid project of its own
    assert variants[0].config["model"]["layers"][0]["filters"] == 8  # the cells share no mutable state


def test_a_sweep_over_the_native_modes_names_each_cell_by_its_mode(tmp_path):
    project, _ = load_project(write(tmp_path, SWEEP + "matrix:\n  native.optimize: [speed, ram, size]\n"))
    variants = expand(project.model_dump(mode="json"))
    assert [v.name for v in variants] == ["mps2-an386-native-optimize_speed", "mps2-an386-native-optimize_ram",
                                          "mps2-an386-native-optimize_size"]
    assert [v.config["native"]["optimize"] for v in variants] == ["speed", "ram", "size"]
    plain, _ = load_project(write(tmp_path, SWEEP))
    assert plain.native.optimize == "balanced"


def test_sweep_values_are_stored_as_validated_and_named_by_position_when_unreadable(tmp_path):
    project, _ = load_project(write(tmp_path, SWEEP + "matrix:\n  sensor.sample_rate_hz: [50, 62.5]\n"
                                    "  data.classes: [[wave, tap], [wave, tap, none]]\n"))
    config = project.model_dump(mode="json")
    assert config["matrix"]["sensor.sample_rate_hz"] == [50.0, 62.5]  # floats, as the schema dumps them
    names = [v.name for v in expand(config)]
    assert names == ["mps2-an386-native-classes_v0-sample_rate_hz50", "mps2-an386-native-classes_v0-sample_rate_hz62.5",
                     "mps2-an386-native-classes_v1-sample_rate_hz50", "mps2-an386-native-classes_v1-sample_rate_hz62.5"]


def test_names_that_would_meet_fall_back_to_numbered_cells():
    from tinypipe.config.matrix import cell_names

    # `a` = "1-b2", `b` = "3" and `a` = "1", `b` = "2-b3" both read a1-b2-b3
    assert cell_names(["mps2-an386"], ["native"], [["a1-b2", "a1"], ["b3", "b2-b3"]]) == [
        "mps2-an386-native-cell0", "mps2-an386-native-cell1", "mps2-an386-native-cell2", "mps2-an386-native-cell3"]


def test_board_and_engine_filters_keep_the_sweeps(tmp_path):
    project, _ = load_project(write(tmp_path, SWEEP + "matrix:\n  board: [mps2-an385, mps2-an386]\n"
                                    "  engine: [native, tflm]\n  model.epochs: [10, 30]\n"))
    config = project.model_dump(mode="json")
    assert len(expand(config)) == 8
    assert [v.name for v in expand(config, board="mps2-an500", engine="tflm")] == [
        "mps2-an500-tflm-epochs10", "mps2-an500-tflm-epochs30"]
    assert [v.name for v in expand(config, engine="native")] == [
        "mps2-an385-native-epochs10", "mps2-an385-native-epochs30",
        "mps2-an386-native-epochs10", "mps2-an386-native-epochs30"]


def test_a_matrix_of_thousands_is_refused_before_it_expands(tmp_path):
    values = "[" + ", ".join(str(i) for i in range(1, 101)) + "]"
    msg = error_of(tmp_path, SWEEP + f"matrix:\n  model.epochs: {values}\n  model.batch_size: {values}\n")
    assert msg.splitlines()[0] == "project.yaml:7:1 matrix: makes 10,000 variants; at most 1,024"


def test_cli_a_bad_sweep_value_exits_2_naming_the_matrix_entry(tmp_path):
    write(tmp_path, "name: demo\n" + GOOD_MODEL + "matrix:\n  model.epochs: [10, -1]\n")
    proc = subprocess.run(tinypipe_cmd() + ["run", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert 'project.yaml:6:22 matrix."model.epochs"[1]: model.epochs: Input should be greater' in proc.stderr
    assert not (tmp_path / ".tinypipe").exists() and not (tmp_path / "tinypipe.lock").exists()


def test_cells_do_not_depend_on_the_order_the_config_cache_keeps(tmp_path):
    """The cache stores canonical JSON (keys sorted): the cells, their names and order must be the same."""
    import json

    from tinypipe.config.loader import load_config

    write(tmp_path, SWEEP + "matrix:\n  sensor.window: [64, 128]\n  model.epochs: [10, 30]\n  board: [mps2-an385]\n")
    fresh, _ = load_config(tmp_path, tmp_path / ".tinypipe")
    cached, _ = load_config(tmp_path, tmp_path / ".tinypipe")
    assert json.loads((tmp_path / ".tinypipe" / "config.json").read_text())["config"] == cached
    fresh_cells = [(v.name, v.config) for v in expand(fresh)]
    assert [(v.name, v.config) for v in expand(cached)] == fresh_cells
    assert [name for name, _ in fresh_cells] == [
        "mps2-an385-native-epochs10-window64", "mps2-an385-native-epochs10-window128",
        "mps2-an385-native-epochs30-window64", "mps2-an385-native-epochs30-window128"]
