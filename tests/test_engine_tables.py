"""The tables of benchmarks/engines.py from given measurements: ratios against TFLM + CMSIS-NN, each mode's
verdict against its own target, the per-operator and per-core comparisons, and cells that could not be
measured printed as errors, never as numbers. (The benchmark itself measures; it is not a test.)"""

from benchmarks import engine_tables as tables


def measured(instructions, arena, flash, macs=1_000_000, exact=True, **extra):
    return {"instructions": instructions, "arena": arena, "app_flash": flash, "macs": macs, "bit_exact": exact,
            **extra}


def test_each_mode_is_judged_against_its_own_target():
    native = {"person_detect": {
        "speed": measured(4_000_000, 60_000, 90_000),
        "balanced": measured(4_000_000, 60_000, 90_000, same_as="speed"),
        "ram": measured(5_000_000, 40_000, 90_000),
        "size": measured(6_000_000, 60_000, 50_000, exact=False),
    }}
    tflm = {"person_detect": {"instructions": 10_000_000, "arena_used": 82_308, "app_flash": 100_000,
                              "bit_exact": True}}
    lines = tables.models_table(native, tflm)
    rows = {line.split()[2]: line for line in lines[2:] if line.startswith("person_detect") and "native" in line}
    assert rows["speed"].split()[3:8] == ["4,000,000", "4.00", "60,000", "90,000", "0.40"]
    assert rows["speed"].endswith("instr <= 0.45x PASS, /MAC <= 1.2 MISS")
    assert rows["balanced"].endswith("(= speed)")
    assert rows["ram"].endswith("arena <= 0.5x PASS")  # 40,000 / 82,308 = 0.49
    assert " 0.49 " in rows["ram"]
    assert rows["size"].endswith("flash <= 0.6x PASS") and " NO " in rows["size"]
    (tflm_row,) = [line for line in lines if "TFLM + CMSIS-NN" in line]
    assert tflm_row.split()[4:8] == ["10,000,000", "10.00", "82,308", "100,000"]


def test_a_cell_that_could_not_be_measured_prints_its_error():
    native = {"resnet8": {"speed": {"error": "UserError: the model does not fit board microbit: " + "x" * 80}}}
    lines = tables.models_table(native, {"resnet8": {"error": "RuntimeError: TFLM failed"}})
    assert lines[2].startswith("resnet8              native speed      error: UserError: the model does not fit")
    assert lines[2].endswith("…") and "x" * 80 not in lines[2]
    assert lines[3].endswith("error: RuntimeError: TFLM failed")


def test_the_per_operator_table_joins_both_profiles_by_operator():
    ops = [{"index": 0, "op": "CONV_2D", "output_shape": [1, 8, 8, 16], "macs": 1000, "kernel": "conv2d_s8"},
           {"index": 1, "op": "RESHAPE", "output_shape": [1, 1024], "macs": 0, "kernel": "alias"},
           {"index": 2, "op": "SOFTMAX", "output_shape": [1, 10], "macs": 0, "kernel": "softmax_s8"}]
    native = [{"op_index": 0, "instructions": 1500}, {"op_index": 2, "instructions": 900}]
    tflm = [{"op_index": 0, "instructions": 3000}, {"op_index": 1, "instructions": 40},
            {"op_index": 2, "instructions": 600}]
    lines = tables.layers_table("m", ops, native, tflm)
    conv, reshape, softmax, total = lines[3:]
    assert conv.split() == ["0", "CONV_2D", "1x8x8x16", "1,000", "1,500", "1.50", "3,000", "3.00", "0.50", "native"]
    assert reshape.split() == ["1", "RESHAPE", "1x1024", "0", "0", "-", "40", "-", "0.00", "native"]
    assert softmax.split()[-2:] == ["1.50", "TFLM"]
    assert total.split() == ["total", "1,000", "2,400", "3,640", "0.66"]
    assert tables.layers_table("m", ops, None, tflm) == ["m: no per-operator profile (native did not report one)"]


def test_the_cores_table_holds_each_core_to_its_target():
    rows = {"cortex-m0": ("microbit", {"error": "UserError: does not fit"}, {"error": "UserError: does not fit"}),
            "cortex-m3": ("mps2-an385", measured(800, 0, 0), measured(1000, 0, 0)),
            "cortex-m4": ("mps2-an386", measured(900, 0, 0), measured(1000, 0, 0))}
    lines = tables.cores_table("kws_ref_model", rows)
    m0, m3, m4 = lines[3:]
    assert m0.split()[:6] == ["cortex-m0", "microbit", "-", "-", "-", "0.7x"]
    assert "native  error: UserError: does not fit; TFLM  error: UserError: does not fit" in m0
    assert m3.split()[2:] == ["800", "1,000", "0.80", "0.7x", "MISS", "yes"]
    assert m4.split()[2:] == ["900", "1,000", "0.90", "1.0x", "PASS", "yes"]
    smaller = tables.core_row("cortex-m0", "microbit", measured(680, 0, 0), measured(1000, 0, 0),
                              model="micro_speech_quantized")
    assert smaller.split()[2:] == ["680", "1,000", "0.68", "0.7x", "PASS", "yes", "(micro_speech_quantized)"]
