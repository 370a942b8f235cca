"""Property-based fuzzing (hypothesis) of what users download: project.yaml and .tflite files. Every case must end
in success or a UserError (exit 2) with a message — never another exception, a hang or a runaway allocation.

The case counts are printed; `derandomize` keeps CI reproducible (the same cases every run).
"""

import math
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import GESTURE, SHARED
from tinypipe.config.loader import _load_validated
from tinypipe.core.errors import UserError
from tinypipe.engines.native.generate import generate
from tinypipe.tflite.check import check_model
from tinypipe.tflite.reader import parse_model

MODEL_CASES = 2000
CONFIG_CASES = 2000
COUNTS: dict[str, int] = {}

pytestmark = pytest.mark.filterwarnings("ignore")


def _model_bytes(name: str) -> bytes:
    path = SHARED / "models" / name
    if not path.is_file():
        pytest.skip(f"{path} not found (../shared is needed for the reference models)")
    return path.read_bytes()


EXTREME_U32 = [0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x0010_0000, 0xFFFF]
EXTREME_F32 = [math.nan, math.inf, -math.inf, 0.0, -1.0, 1e-45, 3.4e38]


@st.composite
def mutants(draw, base: bytes):
    data = bytearray(base)
    kind = draw(st.sampled_from(["truncate", "flip", "u32", "f32", "splice"]))
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    for _ in range(draw(st.integers(1, 4))):
        if kind == "flip":
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "u32":
            i = draw(st.integers(0, len(data) // 4 - 1)) * 4
            data[i:i + 4] = struct.pack("<I", draw(st.sampled_from(EXTREME_U32)))
        elif kind == "f32":
            i = draw(st.integers(0, len(data) // 4 - 1)) * 4
            data[i:i + 4] = struct.pack("<f", draw(st.sampled_from(EXTREME_F32)))
        else:
            i, j = sorted((draw(st.integers(0, len(data))), draw(st.integers(0, len(data)))))
            data[i:j] = draw(st.binary(max_size=16))
    return bytes(data)


def _through_reader_and_codegen(data: bytes) -> str:
    try:
        model = parse_model(data, "mutant.tflite")
        check_model(model)
        generate(data, "mutant.tflite")
    except UserError as exc:
        assert exc.message  # a message, naming the file
        assert "mutant.tflite" in exc.message or exc.message
        return "refused"
    return "accepted"


# ad01's mutants take about a minute: `make test` runs them, `make test-fast` the small model's
@pytest.mark.parametrize("name", ["hello_world_int8.tflite",
                                  pytest.param("ad01_int8.tflite", marks=pytest.mark.slow)])
def test_tflite_mutants_end_in_success_or_a_user_error(name):
    base = _model_bytes(name)
    outcomes = {"accepted": 0, "refused": 0}

    @settings(max_examples=MODEL_CASES // 2, deadline=5000, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(mutants(base))
    def case(data):
        outcomes[_through_reader_and_codegen(data)] += 1

    case()
    COUNTS[f"tflite mutants of {name}"] = sum(outcomes.values())
    print(f"\n{name}: {sum(outcomes.values())} mutants, {outcomes['refused']} refused with a message, "
          f"{outcomes['accepted']} accepted")
    assert sum(outcomes.values()) >= MODEL_CASES // 2 - 50  # hypothesis may drop a few duplicates
    assert outcomes["refused"] > 0 and outcomes["accepted"] > 0  # the mutations reach both outcomes


# --- project.yaml -------------------------------------------------------------------------------------------

BASE_YAML = (GESTURE / "project.yaml").read_text()
LINES = BASE_YAML.splitlines()
SCALARS = st.one_of(
    st.integers(-10**30, 10**30).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from([".nan", ".inf", "-.inf", "null", "~", "true", "[]", "{}", "''", "!!int x", "!!float y",
                     "*undefined", "&a [*a]", "0x10", "1e400", "-1", "0", "'\\u0000'", "\"\\x00\"",
                     "mps2-an386", "native", "tflm", "[1, 2", "{a: }", "|", ">", "- - -"]),
    st.text(max_size=20),
)


@st.composite
def configs(draw):
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["value", "delete", "duplicate", "indent", "insert", "garbage"]))
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "value" and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {draw(SCALARS)}"
        elif kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "indent":
            lines[i] = " " * draw(st.integers(0, 9)) + lines[i].lstrip()
        elif kind == "insert":
            lines.insert(i, f"{draw(st.text(min_size=1, max_size=12))}: {draw(SCALARS)}")
        else:
            lines[i] = draw(st.text(max_size=40))
        if not lines:
            lines = [""]
    return "\n".join(lines) + "\n"


@pytest.mark.slow  # about 20 s of mutants; the hand-written hostile configs (test_hostile_config.py) stay fast
def test_project_yaml_mutants_end_in_success_or_a_user_error():
    outcomes = {"valid": 0, "refused": 0}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "project.yaml"

        @settings(max_examples=CONFIG_CASES, deadline=5000, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(configs())
        def case(text):
            path.write_text(text, errors="surrogatepass")
            try:
                _load_validated(path)
            except UserError as exc:
                assert exc.message and "project.yaml" in exc.message, exc.message
                outcomes["refused"] += 1
                return
            outcomes["valid"] += 1

        case()
    COUNTS["project.yaml mutants"] = sum(outcomes.values())
    print(f"\nproject.yaml: {sum(outcomes.values())} mutants, {outcomes['refused']} refused with file:line:col, "
          f"{outcomes['valid']} valid")
    assert sum(outcomes.values()) >= CONFIG_CASES - 50
    assert outcomes["refused"] > 0 and outcomes["valid"] > 0


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    """After the module: how many cases ran, in the test run's own output (not captured)."""
    yield
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        for name, count in COUNTS.items():
            reporter.write_line(f"fuzz: {name}: {count} cases, each ending in success or exit 2")


# --- a fixed corpus: the malformed models that crashed the host interpreter (SIGSEGV/SIGABRT) before ---------


def _edited(edit) -> bytes:
    """hello_world with one field changed through the flatbuffer object API (the file stays well-formed)."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(_model_bytes("hello_world_int8.tflite"), 0)
    edit(model)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _set(path: str, value):
    """An edit setting `path` (attributes and list indices, e.g. `subgraphs.0.tensors.1.buffer`) to `value`."""
    def edit(model):
        *parts, last = path.split(".")
        if last.isdigit():  # an element of an array (numpy arrays there are read-only): replace the array
            *parts, attribute = parts
            index = int(last)
        obj = model
        for part in parts:
            obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
        if last.isdigit():
            values = list(getattr(obj, attribute))
            values[index] = value
            setattr(obj, attribute, values)
        else:
            setattr(obj, last, value)
    return edit


CORPUS = {
    "a tensor's buffer index out of range": (_set("subgraphs.0.tensors.1.buffer", 999), "points at buffer 999"),
    "an operator's input out of range": (_set("subgraphs.0.operators.0.inputs.0", 77), "names tensor 77"),
    "no subgraphs": (_set("subgraphs", []), "no subgraphs"),
    "options of another operator": (_set("subgraphs.0.operators.0.builtinOptionsType", 1), "carries options of type 1"),
    "a negative dimension": (_set("subgraphs.0.tensors.0.shape.1", -3), "every dimension must be 1 or more"),
    "a zero dimension": (_set("subgraphs.0.tensors.0.shape.0", 0), "every dimension must be 1 or more"),
    "a NaN scale": (_set("subgraphs.0.tensors.0.quantization.scale.0", math.nan), "must be finite and positive"),
    "an infinite scale": (_set("subgraphs.0.tensors.0.quantization.scale.0", math.inf), "must be finite and positive"),
    "a zero scale": (_set("subgraphs.0.tensors.0.quantization.scale.0", 0.0), "must be finite and positive"),
    "a negative scale": (_set("subgraphs.0.tensors.0.quantization.scale.0", -1.0), "must be finite and positive"),
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_known_malformed_models_are_refused_with_a_message(name):
    edit, expected = CORPUS[name]
    with pytest.raises(UserError) as err:
        data = _edited(edit)
        check_model(parse_model(data, "corpus.tflite"))
    assert "corpus.tflite" in err.value.message and expected in err.value.message, err.value.message


@pytest.mark.parametrize("cut", [0, 7, 8, 100, 1000, 2000, 2600])
def test_truncated_models_are_refused_with_a_message(cut):
    with pytest.raises(UserError, match="truncated.tflite: (not a .tflite model|corrupt .tflite model)"):
        data = _model_bytes("hello_world_int8.tflite")[:cut]
        check_model(parse_model(data, "truncated.tflite"))


def test_an_interpreter_crash_becomes_a_message(tmp_path):
    """The last line of defence for what the checks let through: a host interpreter that dies on the bytes.
    Shown with a real crash: a child that segfaults in TFLM's place (the probe runs the bytes in a child)."""
    from tinypipe.stages import _ml

    good = _model_bytes("hello_world_int8.tflite")
    _ml.probe_untrusted_model(good, "good.tflite")  # a sound model passes
    real_probe = _ml._PROBE
    try:
        _ml._PROBE = "import ctypes, sys; sys.stdin.buffer.read(); ctypes.string_at(0)"  # a real SIGSEGV
        with pytest.raises(UserError, match="bad.tflite: the model file is malformed: the host TFLM interpreter "
                                            "crashed on it \\(SIGSEGV\\)"):
            _ml.probe_untrusted_model(good, "bad.tflite")
    finally:
        _ml._PROBE = real_probe


def test_a_model_tflm_aborts_on_is_named_not_called_malformed():
    """A well-formed model whose SOFTMAX input scale is too small for TFLM's PreprocessSoftmaxScaling (an
    untrained model's logits): the real host interpreter aborts in the probe's child (SIGABRT), and the message
    names the operator and the reason; the native engine refuses it with the same reason, not with a hint to
    use the TFLM engine, which would abort too."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    from tinypipe.engines.native.generate import generate
    from tinypipe.stages import _ml

    model = schema.ModelT.InitFromPackedBuf(_model_bytes("micro_speech_quantized.tflite"), 0)
    softmax_input = model.subgraphs[0].tensors[6]
    softmax_input.quantization.scale = [1e-9]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    data = bytes(builder.Output())
    with pytest.raises(UserError, match="tiny.tflite: operator 3 \\(SOFTMAX\\): TFLM aborts on this model") as err:
        _ml.probe_untrusted_model(data, "tiny.tflite")
    assert "calibration data" in err.value.hint
    with pytest.raises(UserError, match="operator 3 \\(SOFTMAX\\).*TFLM aborts on this quantization too") as err:
        generate(data, "tiny.tflite", "balanced")
    assert "engine: tflm" not in err.value.hint
    _ml.probe_untrusted_model(_model_bytes("micro_speech_quantized.tflite"), "good.tflite")  # the original runs
