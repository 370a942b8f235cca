"""`tinypipe init DIR`: a new project with a commented project.yaml that runs as is."""

from __future__ import annotations

from pathlib import Path

from tinypipe.core.errors import UserError
from tinypipe.core.fs import atomic_write_text

TEMPLATE = """\
# A tinypipe project. `tinypipe run {dir}` trains, quantizes, builds and runs it; edit and run again.
name: {name}
version: 0.1.0               # `tinypipe release {dir}` writes dist/{name}-0.1.0/
seed: 0                      # every random choice (data, weights, splits) derives from this

sensor:
  kind: accelerometer
  axes: [x, y, z]
  sample_rate_hz: 50
  window: 64                 # samples per classified window

data:
  source: generator          # built-in generator: classes wave, tap, none
  classes: [wave, tap, none]
  samples_per_class: 200

model:
  layers:                    # conv1d, maxpool1d, avgpool1d, flatten, dense, dropout
    - {{type: conv1d, filters: 8, kernel_size: 5, activation: relu}}
    - {{type: maxpool1d, pool_size: 2}}
    - {{type: flatten}}
    - {{type: dense, units: 16, activation: relu}}
    - {{type: dense, units: 3}}
  epochs: 20

quantization:
  scheme: int8               # full-integer int8 (weights per channel, activations per tensor)
  io: int8                   # the model's input and output; float32 keeps them float (quantized inside)
  representative_samples: 100

target:
  board: mps2-an386          # `tinypipe boards` lists them
  profile_layers: false      # true: also time every operator on the device

engine: native               # our ahead-of-time Rust engine

budgets:
  accuracy_device_min: 0.8   # the run fails (exit 1) below this
"""


def init_project(directory: Path) -> Path:
    directory = Path(directory)
    path = directory / "project.yaml"
    if path.exists():
        raise UserError(f"{path} already exists", "choose another directory, or edit that file")
    name = directory.resolve().name or "project"
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in name)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, TEMPLATE.format(name=safe, dir=directory))
    return path
