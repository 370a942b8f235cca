"""Where a convolution's output may overlap its own input: the row geometry and the shift (kernels' rows.rs).

Run one output row at a time, a CONV_2D or DEPTHWISE_CONV_2D reads its input rows top to bottom, so its output
may start `shift` bytes before its input (after it, for a negative shift) as long as no output row is written
over input bytes that this row or a later one still reads. `shift` is the smallest that guarantees it; the two
tensors then take max(output bytes, shift + input bytes) together instead of their sum. The checks mirror `rows_fit` in rows.rs, which
generated code asserts at compile time, so a disagreement fails the build rather than the bits.
"""

from __future__ import annotations

from dataclasses import dataclass

ROW_KERNELS = {"conv2d_s8": "Conv2d", "depthwise_conv2d_s8": "DepthwiseConv2d"}  # kernels with a `_rows` twin


@dataclass(frozen=True)
class Rows:
    in_h: int
    in_row: int  # bytes per input row
    out_h: int
    out_row: int  # bytes per output row
    k_h: int
    stride_h: int
    dil_h: int
    pad_h: int

    def first_read(self, oy: int) -> int:
        """The first input row output row `oy` reads (`Rows::reads` in rows.rs)."""
        return min(max(oy * self.stride_h - self.pad_h, 0), self.in_h)

    @property
    def in_bytes(self) -> int:
        return self.in_h * self.in_row

    @property
    def out_bytes(self) -> int:
        return self.out_h * self.out_row

    def shift(self) -> int:
        """Bytes the input starts after the output: the least that keeps every written row off unread input."""
        need = max(((oy + 1) * self.out_row - self.first_read(oy) * self.in_row for oy in range(self.out_h)),
                   default=0)
        return max(need, 0)

    def fits(self, in_off: int, out_off: int) -> bool:
        """`rows_fit` without the arena bound: no output row lands on input bytes still to be read."""
        in_end = in_off + self.in_bytes
        for oy in range(self.out_h):
            unread = in_off + self.first_read(oy) * self.in_row
            start, end = out_off + oy * self.out_row, out_off + (oy + 1) * self.out_row
            if not (end <= unread or start >= in_end):
                return False
        return True


def row_geometry(step) -> Rows | None:
    """The step's rows when its kernel can run row by row over an overlapping input (one batch), else None."""
    if ROW_KERNELS.get(step.kernel) != step.params_type or step.params.get("batches") != 1:
        return None
    p = step.params
    out_c = p["out_c"] if step.params_type == "Conv2d" else p["in_c"] * p["depth_multiplier"]
    return Rows(in_h=p["in_h"], in_row=p["in_w"] * p["in_c"], out_h=p["out_h"], out_row=p["out_w"] * out_c,
                k_h=p["k_h"], stride_h=p["stride_h"], dil_h=p["dil_h"], pad_h=p["pad_h"])


def overlap_of(step) -> tuple[int, int, int] | None:
    """(input bytes, output bytes, shift) when the step may write its output over its input, else None: a
    convolution row by row, or a patch (patch.py) band by band."""
    own = getattr(step, "overlap", None)
    if own is not None:
        return own()
    rows = row_geometry(step)
    return None if rows is None else (rows.in_bytes, rows.out_bytes, rows.shift())
