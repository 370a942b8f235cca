"""Patch-based inference of the first layers (MCUNetV2's idea, in row bands): a schedule the planner may pick.

The first convolutions of a vision model hold its largest tensors. Run a prefix of them band by band instead:
for each band of the last one's output rows, every layer computes just the rows that band needs (its receptive
field, halo rows recomputed by the next band), so the prefix's inner tensors only ever exist as a few rows in
small band buffers. The prefix's input and final output stay whole. The price is the halo recomputed: reported
as extra MACs. Kernels: `conv2d_s8_band` / `depthwise_conv2d_s8_band` in rows.rs.

`candidates(program)` lists the schedules to try (every prefix length from two layers, several band counts);
`schedule(program, patch)` is the step list with the prefix replaced by one `Patch` step that plan.py places
like any other (its band buffers a tensor of its own that lives only at that step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tinypipe.engines.native.overlap import Rows, row_geometry

BAND_HEIGHTS = (1, 2, 3, 4, 6, 8, 12, 16)  # output rows of the last layer per band
MAX_LAYERS = 6


def _band_reads(rows: Rows, o0: int, o1: int) -> tuple[int, int]:
    """Input rows `first..end` output rows `o0..o1` read (`Rows::band_reads` in rows.rs)."""
    first = rows.first_read(o0)
    bottom = (o1 - 1) * rows.stride_h + (rows.k_h - 1) * rows.dil_h + 1
    end = min(max(bottom - rows.pad_h, 0), rows.in_h)
    return first, max(end, first)


@dataclass
class Patch:
    """The prefix `steps` run in bands; reads `input` whole, writes `output` whole, band buffers in `temp`."""
    steps: list
    bands: list[list[tuple[int, int]]]  # per band, per layer: the output rows it computes
    temp: int  # the band buffers' pseudo tensor (plan.py sizes it like a tensor)
    temp_sizes: list[int]  # bytes of each inner layer's band buffer (the most rows any band needs)
    extra_macs: int  # MACs beyond the layers' own: the halo rows computed again
    # what plan.py reads of a step
    kernel: str = "patch"
    params_type: str = ""
    params: dict = field(default_factory=dict)
    more_inputs: tuple = ()
    in_place_inputs: tuple = ()

    @property
    def index(self) -> int:
        return self.steps[-1].index  # the operator whose output the step hands on

    @property
    def input(self) -> int:
        return self.steps[0].input

    @property
    def output(self) -> int:
        return self.steps[-1].output

    @property
    def temps(self) -> tuple[int, ...]:
        return (self.temp,)

    @property
    def temp_bytes(self) -> int:
        return sum(self.temp_sizes)

    def overlap(self) -> tuple[int, int, int]:
        """(input bytes, output bytes, shift) for writing the output over the input (plan.py): band `j`'s output
        rows must land below the input rows band `j + 1` reads first (`patch_fits` in rows.rs)."""
        first, last = row_geometry(self.steps[0]), row_geometry(self.steps[-1])
        need = [b[-1][1] * last.out_row - _band_reads(first, *nxt[0])[0] * first.in_row
                for b, nxt in zip(self.bands, self.bands[1:])]
        return first.in_bytes, last.out_bytes, max([0, *need])

    def summary(self) -> dict:
        return {"ops": [s.index for s in self.steps], "bands": len(self.bands), "band_buffer_bytes": self.temp_bytes,
                "extra_macs": self.extra_macs, "macs": sum(s.macs for s in self.steps)}


def make_patch(steps: list, band_count: int, temp: int) -> Patch:
    rows = [row_geometry(s) for s in steps]
    last_h = rows[-1].out_h
    edges = [round(j * last_h / band_count) for j in range(band_count + 1)]
    bands = []
    for o0, o1 in zip(edges, edges[1:]):
        per_layer = [(o0, o1)]
        for r in reversed(rows[1:]):
            per_layer.append(_band_reads(r, *per_layer[-1]))
        bands.append(per_layer[::-1])
    temp_sizes = [max(b[layer][1] - b[layer][0] for b in bands) * rows[layer].out_row for layer in range(len(steps) - 1)]
    computed = sum((b[layer][1] - b[layer][0]) * steps[layer].macs // rows[layer].out_h
                   for b in bands for layer in range(len(steps)))
    return Patch(steps=list(steps), bands=bands, temp=temp, temp_sizes=temp_sizes,
                 extra_macs=computed - sum(s.macs for s in steps))


def _prefix(program) -> list:
    """The first run of convolutions each feeding only the next (row kernels, one batch), from the first one."""
    readers: dict[int, int] = {}
    for s in program.steps:
        for t in (s.input, *s.more_inputs):
            readers[t] = readers.get(t, 0) + 1
    aliased = set(program.alias_of) | set(program.alias_of.values())
    run: list = []
    for s in program.steps:
        if row_geometry(s) is None or s.more_inputs:
            if run:
                break
            continue
        if run and (s.input != run[-1].output or readers.get(s.input) != 1 or s.input in aliased
                    or s.input == program.output):
            break
        run.append(s)
        if len(run) == MAX_LAYERS:
            break
    return run


def candidates(program, temp: int) -> list[Patch]:
    """Every patch worth trying: prefixes of two layers or more, each in bands of 1, 2, 3, ... 16 of the last
    one's output rows (two bands at least)."""
    prefix = _prefix(program)
    found = []
    for n in range(2, len(prefix) + 1):
        out_h = row_geometry(prefix[n - 1]).out_h
        for bands in sorted({-(-out_h // height) for height in BAND_HEIGHTS} - {1}):
            found.append(make_patch(prefix[:n], bands, temp))
    return found


def schedule(program, patch: Patch | None) -> list:
    """The program's steps with the patch's prefix replaced by the patch."""
    if patch is None:
        return list(program.steps)
    inner = {s.index for s in patch.steps}
    out = []
    for s in program.steps:
        if s.index == patch.steps[0].index:
            out.append(patch)
        elif s.index not in inner:
            out.append(s)
    return out
