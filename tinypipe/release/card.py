"""The model card of a release: what the model was trained on, what it is, how it was quantized and what it
measured on the device — every figure from this run's stage outputs (`facts`, gathered by `bundle.variant_facts`),
none written by hand. Markdown, deterministic: no time, no path outside the bundle."""

from __future__ import annotations

from typing import Any


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f} %"


def _int(value: int | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:,}{unit}"


def _layer(spec: dict[str, Any]) -> str:
    details = ", ".join(f"{k} {v}" for k, v in spec.items() if k != "type")
    return f"{spec['type']}" + (f" ({details})" if details else "")


def _data_section(data: dict[str, Any]) -> list[str]:
    where = f" `{data['path']}`" if data.get("path") else ""
    lines = ["### Data", "",
             f"- source: {data['source']}{where}; windows of {data['window']} samples x {len(data['axes'])} axes "
             f"({', '.join(data['axes'])})",
             f"- classes: {', '.join(data['classes'])}",
             f"- sha256 of the data stage's output (`tinypipe.lock`, stage `data`): `{data['output']}`",
             "", "| split | " + " | ".join(data["classes"]) + " | total |",
             "|---|" + "---:|" * (len(data["classes"]) + 1)]
    for split in ("train", "val", "test"):
        counts = data["counts"].get(split, {})
        lines.append(f"| {split} | " + " | ".join(str(counts.get(c, 0)) for c in data["classes"])
                     + f" | {sum(counts.values())} |")
    return lines + [""]


def _model_section(model: dict[str, Any]) -> list[str]:
    lines = ["### Model", ""]
    if model.get("path"):
        lines.append(f"- imported from `{model['path']}` (sha256 `{model['file_sha256']}`)")
    else:
        lines += [f"- layers: {'; '.join(_layer(spec) for spec in model['layers'])}"
                  + ("; softmax" if model["softmax"] else ""),
                  f"- trained {model['epochs']} epochs, batch {model['batch_size']}, learning rate "
                  f"{model['learning_rate']:g}, seed {model['seed']}"]
    lines += [f"- parameters: {_int(model.get('params'))}",
              f"- float test accuracy (Keras, host): {_pct(model.get('test_accuracy_float'))}", ""]
    return lines


def _tensor(t: dict[str, Any]) -> str:
    return f"{t['dtype']} {t['shape']}, scale {t['scale']!r}, zero point {t['zero_point']}"


def _quantization_section(q: dict[str, Any]) -> list[str]:
    return ["### Quantization", "",
            f"- scheme {q['scheme']}, I/O {q['io']}, calibrated on {q['representative_samples']} training windows",
            f"- input: {_tensor(q['input'])}",
            f"- output: {_tensor(q['output'])}",
            f"- operators: {', '.join(q['ops'])}",
            f"- model.tflite: {_int(q['tflite_bytes'], ' B')}, sha256 `{q['tflite_sha256']}`", ""]


def _results_section(r: dict[str, Any]) -> list[str]:
    instructions = _int(r["instructions_per_inference"])
    if r.get("instructions_min") is not None:
        instructions += f" (min {r['instructions_min']:,}, max {r['instructions_max']:,})"
    rows = [
        ("accuracy on the host (int8, TFLM interpreter)", _pct(r["accuracy_host"])),
        ("accuracy on the device", _pct(r["accuracy_device"])),
        ("bit-exact with the host interpreter", {True: "yes", False: "NO"}.get(r["bit_exact"], "—")),
        ("instructions per inference (QEMU -icount, not cycles)", instructions),
        ("flash: application", _int(r["app_flash_bytes"], " B")),
        ("flash: with the test windows the emulator replays", _int(r["flash_bytes"], " B")),
        ("RAM (data, bss, stack reservation)", _int(r["ram_bytes"], " B")),
        ("stack used (measured)", _int(r.get("stack_bytes"), " B")),
        ("tensor arena", _int(r["arena_bytes"], " B")),
    ]
    return (["### Measured on the device", "", "| | |", "|---|---:|"]
            + [f"| {what} | {value} |" for what, value in rows] + [""])


def model_card(project: str, version: str, variants: list[dict[str, Any]], caveats: dict[str, str]) -> str:
    """The card for `project` `version`; `variants`: one facts mapping per matrix cell (`bundle.variant_facts`)."""
    lines = [f"# {project} {version}: model card", "",
             "Every figure below was measured by the run this release was built from (`tinypipe release`); "
             "`tinypipe.lock` pins every stage's inputs and output.", ""]
    for v in variants:
        lines += [f"## {v['variant']}", "",
                  f"Board {v['board']} ({v['triple']}, {v['cpu']}), engine {v['engine']}; files in `{v['variant']}/`.",
                  ""]
        lines += _data_section(v["data"]) + _model_section(v["model"]) + _quantization_section(v["quantization"])
        lines += _results_section(v["results"])
    if caveats:
        lines += ["## Reproducibility", ""]
        for caveat in dict.fromkeys(caveats.values()):
            stages = ", ".join(s for s, c in caveats.items() if c == caveat)
            lines.append(f"- {stages}: {caveat}")
        lines.append("")
    return "\n".join(lines)
