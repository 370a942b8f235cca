"""Lower a parsed .tflite subgraph to kernel calls with every parameter TFLM's `Prepare` would compute.

Each supported operator becomes a `Step`: the kernel to call, the integer parameters of its Rust struct, and
the constant arrays it reads (weights, folded biases, per-channel requantization). RESHAPE, EXPAND_DIMS and
SQUEEZE become aliases: their output is the same bytes as their input. Unary int8 -> int8 operators (RELU,
RELU6, LEAKY_RELU, LOGISTIC, TANH, HARD_SWISH, QUANTIZE) become a 256-entry table; binary ones (ADD, SUB,
MUL) read two operands, either of which may be a constant in flash. PAD, PADV2, TRANSPOSE and STRIDED_SLICE
become one strided copy; CONCATENATION copies rows of its inputs; MEAN sums over two loop nests. QUANTIZE
float32 -> int8 and DEQUANTIZE int8 -> float32 convert a float32 model input or output (the converter's
`inference_input_type`/`inference_output_type` left at float32); float32 tensors live in the arena as bytes.
Anything else, or a dtype other than int8 activations with int8 weights and int32 biases, is a `UserError`
naming the operator.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass, field

from tinypipe.core.errors import UserError
from tinypipe.engines.native import channels, entropy, quant
from tinypipe.engines.native.channels import Packed
from tinypipe.engines.native.quant import QuantError
from tinypipe.tflite.io import IO_DTYPES
from tinypipe.tflite.reader import Model, Operator, Subgraph, Tensor

# int8 -> int8 through a 256-entry table
LOOKUP_OPS = ("RELU", "RELU6", "LEAKY_RELU", "LOGISTIC", "TANH", "HARD_SWISH", "QUANTIZE")
BINARY_OPS = ("ADD", "SUB", "MUL")
COPY_OPS = ("PAD", "PADV2", "TRANSPOSE", "STRIDED_SLICE")  # one strided copy (copy.rs `StridedCopy`)
SUPPORTED_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "SOFTMAX",
                 "RESHAPE", "EXPAND_DIMS", "SQUEEZE", *LOOKUP_OPS, "DEQUANTIZE", *BINARY_OPS, *COPY_OPS,
                 "CONCATENATION", "MEAN")
BROADCAST_DIMS = 5  # the binary kernels' loop nest (elementwise.rs `Broadcast`), and the strided copy's
MAX_CONCAT_INPUTS = 10  # TFLM's kMaxInputNum
ALIAS_OPS = ("RESHAPE", "EXPAND_DIMS", "SQUEEZE")
# An entropy-coded layer must save at least this much flash over its int8 weights: it pays for its call into the
# decoding kernel, and a layer that saves less (small or near-uniform weights) stays plain and fast.
CODED_MIN_SAVING = 512
TFLM_HINT = "use `engine: tflm` for this model (the native engine supports: " + ", ".join(SUPPORTED_OPS) + ")"


@dataclass(frozen=True)
class ConstArray:
    """A `static` array in the generated code."""

    name: str
    rust_type: str  # element type: "i8", "u8" (a code stream), "i32", "u32" (re-laid weights for a kernel), "Rs"
    values: tuple  # ints, or (multiplier, add, right) for "Rs"

    @property
    def nbytes(self) -> int:
        return len(self.values) * {"i8": 1, "u8": 1, "i32": 4, "u32": 4, "Rs": 8}[self.rust_type]


@dataclass
class Step:
    index: int  # operator index in the subgraph
    op: str  # TFLite builtin name
    kernel: str  # Rust function, "" for an alias
    params_type: str  # Rust parameter struct, "" for an alias
    params: dict[str, int]
    arrays: list[ConstArray]  # passed to the kernel after the input slice, in order
    input: int  # activation tensor read
    output: int  # tensor written
    macs: int = 0
    note: str = ""  # human summary for the generated comment
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    scratch_words: int = 0  # kernel working memory (u32 words) the step needs; 0: none
    stage_bytes: int = 0  # kernel staging bytes the step needs
    takes_stage: bool = False  # the kernel's signature has a staging slice after the scratch
    more_inputs: tuple[int, ...] = ()  # further activation tensors read, after `input` (ADD, MUL, ...)
    const_inputs: dict[int, ConstArray] = field(default_factory=dict)  # input position -> constant operand
    inputs_as_array: bool = False  # the kernel takes its operands as one array (CONCATENATION)
    generics: str = ""  # the kernel's const generic arguments (`::<false, true>`), "" for none
    in_place_inputs: tuple[int, ...] = ()  # inputs the kernel can write its output over (see plan.py)
    operands: tuple[int, ...] = ()  # a binary operator's (a, b) tensors, constants included
    general_channels: int = 0  # conv/depthwise/FC channels on TFLM's general requantization path (quant.rs `Rescale`)
    coded_weights: tuple[int, int] = ()  # entropy-coded weights (entropy.py): (their bytes plain, coded)
    packed: Packed | None = None  # biases and rescales bit-packed (channels.py): arrays `CW{index}`, `CA{index}`


@dataclass
class Program:
    steps: list[Step]
    tensors: tuple[Tensor, ...]
    input: int
    output: int
    alias_of: dict[int, int] = field(default_factory=dict)  # tensor -> tensor whose bytes it shares
    widened_weights: bool = False  # convolution filters pre-widened to int16 pairs (`lower`)
    coded_weights: bool = False  # fully connected weights entropy-coded where that saves flash (`lower`)


def _unpack(tensor: Tensor, fmt: str) -> tuple[int, ...]:
    count = tensor.size
    return struct.unpack_from(f"<{count}{fmt}", tensor.data or b"", 0)


def pack_words(values: list[int]) -> tuple[int, ...]:
    """int8 values (a multiple of four) -> little-endian u32 words, as the kernels load them."""
    return tuple(struct.unpack(f"<{len(values) // 4}I", struct.pack(f"<{len(values)}b", *values)))


def conv_filter_words(weights: tuple[int, ...], out_c: int, row_len: int) -> tuple[int, ...]:
    """OHWI rows -> the `conv2d_s8` layout: rows zero-padded to whole words, an odd row count padded with a
    zero row, and each pair of rows interleaved word by word (row 2p word g, row 2p+1 word g, ...)."""
    words = -(-row_len // 4)
    rows = [list(weights[o * row_len:(o + 1) * row_len]) + [0] * (4 * words - row_len) for o in range(out_c)]
    if out_c % 2:
        rows.append([0] * (4 * words))
    out: list[int] = []
    for pair in range(0, len(rows), 2):
        for g in range(words):
            out += rows[pair][4 * g:4 * g + 4] + rows[pair + 1][4 * g:4 * g + 4]
    return pack_words(out)


def widen_filter_words(words: tuple[int, ...], factor: int = 1) -> tuple[int, ...]:
    """`conv_filter_words` or `fc_weight_words` -> the `conv2d_s8_widened` or `fully_connected_s8_widened`
    layout: each word's four int8 `v0..v3` as the two words `(v0, v2)` and `(v1, v3)` of int16 pairs (what
    SXTB16 makes of it), in the same order; each value times `factor` (2: a conv filter of a layer whose
    accumulators hold twice the sum, so its patches need no doubling; -256..254 fits a halfword)."""
    out: list[int] = []
    for word in words:
        v = [factor * b for b in struct.unpack("<4b", struct.pack("<I", word))]
        out += [pack_halves(v[0], v[2]), pack_halves(v[1], v[3])]
    return tuple(out)


def conv_widened_stream(widened: tuple[int, ...], words: int, bias2, rescales) -> tuple[int, ...]:
    """`widen_filter_words` of a `conv_filter_words` layout (`words` per row) -> the `conv2d_s8_widened`
    layout: each pair of rows framed by its channels' folded biases (each twice: the four accumulators' start)
    and their `Rescale` words and shifts (`(multiplier, add)` of both, then both `trailing_zeros(add)`), so
    the DSP loop reads a whole layer through one pointer (conv.rs `WIDENED_PAIR_EXTRA_WORDS`). An odd
    channel count's padding row gets a zero bias and a harmless rescale."""
    bias2 = list(bias2) + [0] * (len(bias2) % 2)
    rescales = list(rescales) + [(0, 0, 1)] * (len(rescales) % 2)
    per_pair = 4 * words
    out: list[int] = []
    for pair in range(len(bias2) // 2):
        b0, b1 = bias2[2 * pair], bias2[2 * pair + 1]
        (m0, a0, r0), (m1, a1, r1) = rescales[2 * pair], rescales[2 * pair + 1]
        add0, add1 = rescale_word(a0, r0) & 0xFFFFFFFF, rescale_word(a1, r1) & 0xFFFFFFFF
        out += [b0 & 0xFFFFFFFF, b0 & 0xFFFFFFFF, b1 & 0xFFFFFFFF, b1 & 0xFFFFFFFF]
        out += widened[pair * per_pair:(pair + 1) * per_pair]
        out += [m0 & 0xFFFFFFFF, add0, m1 & 0xFFFFFFFF, add1, _trailing_zeros(add0), _trailing_zeros(add1)]
    return tuple(out)


def _trailing_zeros(word: int) -> int:
    return (word & -word).bit_length() - 1 if word else 32


def fc_weight_words(weights: tuple[int, ...], out_depth: int, depth: int) -> tuple[int, ...]:
    """[output, depth] rows -> the `fully_connected_s8` layout: rows zero-padded to whole words and to a
    multiple of four rows, the four rows of each block interleaved word by word."""
    words = -(-depth // 4)
    rows = [list(weights[o * depth:(o + 1) * depth]) + [0] * (4 * words - depth) for o in range(out_depth)]
    rows += [[0] * (4 * words)] * (-len(rows) % 4)
    out: list[int] = []
    for block in range(0, len(rows), 4):
        for g in range(words):
            for r in range(4):
                out += rows[block + r][4 * g:4 * g + 4]
    return pack_words(out)


def pack_halves(lo: int, hi: int) -> int:
    """Two int16 -> one u32 word, `lo` in the low halfword."""
    return (lo & 0xFFFF) | (hi & 0xFFFF) << 16


def depthwise_filter_words(weights: tuple[int, ...], out_c: int, k_h: int, k_w: int, dil_w: int,
                           row_words: int, in_c: int, plain: frozenset[int] = frozenset()) -> tuple[int, ...]:
    """1HWC filter -> the `depthwise_conv2d_s8` layout: per block of four output channels (lanes), per tap,
    `(w02, w13, offset)`: lanes (0, 2) and (1, 3) as int16 pairs (doubled, but for the general-path channels
    in `plain`: quant.rs `Rescale`), and the tap's word index in the
    widened rows relative to the output pixel's block (`row_words` per row, two words per block per
    column). With a depth multiplier that is a multiple of four the rows are int8 and `offset` is the byte
    index of the block's input channel relative to the output pixel. Lanes past `out_c` have zero weights."""
    lanes = -(-out_c // 4) * 4
    half = lanes // 2
    dm = out_c // in_c
    broadcast = dm % 4 == 0

    def w(tap: int, o: int) -> int:
        return (1 if o in plain else 2) * weights[tap * out_c + o] if o < out_c else 0

    out: list[int] = []
    for b in range(lanes // 4):
        o = 4 * b
        for ky in range(k_h):
            for kx in range(k_w):
                tap = ky * k_w + kx
                if broadcast:
                    offset = ky * 4 * row_words + kx * dil_w * in_c + o // dm
                else:
                    offset = ky * row_words + kx * dil_w * half
                out += [pack_halves(w(tap, o), w(tap, o + 2)), pack_halves(w(tap, o + 1), w(tap, o + 3)), offset]
    return tuple(out)


def rescale(rq: tuple[int, int], output_offset: int, bound: int = 0) -> tuple[int, int, int]:
    """A channel's `Rescale` (quant.rs): the output zero point and rounding folded in for the short path,
    or `(multiplier, shift, 0)` for the general one, which a channel whose accumulator can reach `bound >=
    2^30` takes too (its kernel then sums in plain int32, like TFLM)."""
    multiplier, shift = rq
    if shift < 0 and bound < SHORT_PATH_ACC_LIMIT:
        e = -shift
        add = (1 << (e - 1)) + output_offset * (1 << e)
        if abs(add) < SHORT_PATH_ACC_LIMIT and e <= RESCALE_GENERAL_TZ:
            return multiplier, add, e
    return multiplier, shift, 0


# `trailing_zeros` of a general-path `Rescale.add` (quant.rs `GENERAL_TZ`); short-path channels have `right <=` it
RESCALE_GENERAL_TZ = 25


def rescale_word(add: int, right: int) -> int:
    """`Rescale.add` as stored (quant.rs): the short path's `add` (`right = trailing_zeros(add) + 1`), or for
    the general path (`right == 0`, `add` TFLM's shift) the shift in the top six bits over `1 << 25`."""
    if right == 0:
        assert -32 <= add < 32
        v = (add << 26) | (1 << RESCALE_GENERAL_TZ)
        v &= 0xFFFFFFFF
        return v - (1 << 32) if v >= 1 << 31 else v
    if add == 0:  # padding lanes
        return 1 << (right - 1)
    assert (add & -add) == 1 << (right - 1), (add, right)
    return add


def requant_variant(rescales, act_min: int, act_max: int) -> str:
    """The const generics `<GENERAL, FULL>` of `fully_connected_s8` (`variant_fits` in quant.rs): chosen here
    so that a model links only the variants its layers use. (The same for conv and depthwise saved ~1.7 KB
    on kws_ref_model but changed LLVM's code for them: 4% more instructions.)"""
    general = any(right == 0 for _, _, right in rescales)
    full = (act_min, act_max) == (-128, 127)
    return f"::<{str(general).lower()}, {str(full).lower()}>"


# |accumulator| bound below which twice it fits an int32 and the short requantization path is exact (`Rescale`)
SHORT_PATH_ACC_LIMIT = 1 << 30


def accumulator_bound(bias: int, weights, input_span: int) -> int:
    """Largest |bias + sum(w * x)| with |x| <= input_span."""
    return abs(bias) + input_span * sum(abs(w) for w in weights)


def wrap_int32(v: int) -> int:
    """`v` modulo 2^32 as an int32: a folded bias whose true value does not fit still gives the int32 sum
    TFLM computes (additions wrap the same way), whenever that sum fits."""
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def layer_rescales(rqs, output_offset: int, bounds) -> tuple[tuple[int, int, int], ...]:
    """Every channel's `Rescale` for a layer whose channels share their inputs (conv, fully connected): all on
    the general path when one must be, since the kernel's sums are then plain for all of them."""
    rescales = tuple(rescale(r, output_offset, bound) for r, bound in zip(rqs, bounds))
    if general_channels(rescales):
        return tuple(rescale(r, output_offset, SHORT_PATH_ACC_LIMIT) for r in rqs)
    return rescales


def general_channels(rescales) -> int:
    """Channels on TFLM's general requantization path; any makes the layer a general one (quant.rs `Rescale`)."""
    return sum(1 for _, _, right in rescales if right == 0)


def requant_note(general: int, channels: int) -> str:
    """The generated comment's account of a layer's requantization path."""
    if not general:
        return ""
    return f", TFLM's general requantization for {general} of {channels} channels (plain int32 sums)"


def contiguous_strides(shape: tuple[int, ...]) -> list[int]:
    out, step = [0] * len(shape), 1
    for d in reversed(range(len(shape))):
        out[d] = step
        step *= shape[d]
    return out


def _describe(op: Operator, graph: Subgraph) -> str:
    def one(i: int) -> str:
        if i < 0:
            return "(none)"
        t = graph.tensors[i]
        return f"{t.dtype}{list(t.shape)}"

    ins = ", ".join(one(i) for i in op.inputs)
    outs = ", ".join(one(i) for i in op.outputs)
    return f"operator {op.index} ({op.op}) with inputs [{ins}] and outputs [{outs}]"


class _Lowering:
    def __init__(self, model: Model, widen_weights: bool, code_weights: bool = False, add_tables: bool = True,
                 compact: bool = False):
        self.code_weights = code_weights
        self.compact = compact
        self.model = model
        self.widen_weights = widen_weights
        self.add_tables = add_tables
        self.graph = model.main
        self.t = self.graph.tensors

    def fail(self, op: Operator, why: str, hint: str = TFLM_HINT) -> UserError:
        return UserError(f"{self.model.source}: {_describe(op, self.graph)}: {why}", hint)

    def quant_of(self, op: Operator, t: Tensor, what: str) -> tuple[float, int]:
        q = t.quantization
        if q is None or not q.scale:
            raise self.fail(op, f"its {what} tensor {t.name!r} has no quantization parameters")
        if len(q.scale) != 1:
            raise self.fail(op, f"its {what} tensor {t.name!r} is quantized per channel; only weights may be")
        return q.scale[0], q.zero_point[0] if q.zero_point else 0

    def activation(self, op: Operator, idx: int, what: str, dtype: str = "int8") -> Tensor:
        t = self.t[idx]
        if t.dtype != dtype:
            raise self.fail(op, f"its {what} tensor {t.name!r} is {t.dtype}; " + (
                "the native engine runs int8 only" if dtype == "int8" else f"the native engine needs {dtype}"))
        if t.is_constant:
            raise self.fail(op, f"its {what} tensor {t.name!r} is a constant")
        if any(d <= 0 for d in t.shape):
            raise self.fail(op, f"its {what} tensor {t.name!r} has a dynamic or empty shape {list(t.shape)}")
        return t

    def weights(self, op: Operator, idx: int) -> Tensor:
        t = self.t[idx]
        if t.dtype != "int8" or not t.is_constant:
            raise self.fail(op, f"its weights {t.name!r} are {t.dtype}{'' if t.is_constant else ' (not constant)'}; "
                                "the native engine needs constant int8 weights")
        q = t.quantization
        if q is None or not q.scale:
            raise self.fail(op, f"its weights {t.name!r} have no quantization parameters")
        if any(z != 0 for z in q.zero_point):
            raise self.fail(op, f"its weights {t.name!r} have a non-zero zero point (TFLM requires symmetric int8)")
        return t

    def bias(self, op: Operator, channels: int) -> tuple[int, ...]:
        if len(op.inputs) < 3 or op.inputs[2] < 0:
            return (0,) * channels
        t = self.t[op.inputs[2]]
        if t.dtype != "int32" or not t.is_constant:
            raise self.fail(op, f"its bias {t.name!r} is {t.dtype}; the native engine needs a constant int32 bias")
        if t.size != channels:
            raise self.fail(op, f"its bias has {t.size} values for {channels} output channels")
        return _unpack(t, "i")

    def single_io(self, op: Operator, n_inputs: tuple[int, ...]) -> None:
        if len(op.inputs) not in n_inputs or len(op.outputs) != 1:
            raise self.fail(op, f"unexpected number of inputs/outputs ({len(op.inputs)}/{len(op.outputs)})")

    def act_range(self, op: Operator, output: Tensor, activation: str) -> tuple[int, int]:
        scale, zp = self.quant_of(op, output, "output")
        try:
            return quant.activation_range(activation, scale, zp)
        except QuantError as exc:
            raise self.fail(op, str(exc), "re-quantize the model") from None

    def guarded(self, op: Operator, fn, *args):
        try:
            return fn(*args)
        except QuantError as exc:
            raise self.fail(op, f"its quantization cannot be reproduced: {exc}", "re-quantize the model") from None

    @staticmethod
    def folded(bias: tuple[int, ...], weights: tuple[int, ...], per: int, input_offset: int) -> tuple[int, ...]:
        """`bias + input_offset * sum(row)` per row of `per` weights, exact (not wrapped)."""
        return tuple(b + input_offset * sum(weights[c * per:(c + 1) * per]) for c, b in enumerate(bias))

    # --- operators -------------------------------------------------------------------------------------

    def fully_connected(self, op: Operator) -> Step:
        self.single_io(op, (2, 3))
        x = self.activation(op, op.inputs[0], "input")
        w = self.weights(op, op.inputs[1])
        y = self.activation(op, op.outputs[0], "output")
        if len(w.shape) != 2:
            raise self.fail(op, f"its weights have shape {list(w.shape)}; expected [output, depth]")
        if op.options.get("weights_format", 0) != 0:
            raise self.fail(op, "its weights use the shuffled format")
        out_depth, depth = w.shape
        if x.size % depth or y.size % out_depth or x.size // depth != y.size // out_depth:
            raise self.fail(op, f"its input ({x.size} values) does not split into rows of {depth} matching "
                                f"the output ({y.size} values, {out_depth} per row)")
        batches = y.size // out_depth
        in_scale, in_zp = self.quant_of(op, x, "input")
        out_scale, out_zp = self.quant_of(op, y, "output")
        wq = w.quantization
        if wq.per_channel:
            rq = self.guarded(op, quant.per_channel_multipliers, in_scale, wq.scale, out_scale, out_depth)
        else:
            rq = [self.guarded(op, quant.fully_connected_multiplier, in_scale, wq.scale[0], out_scale)] * out_depth
        act_min, act_max = self.act_range(op, y, op.options.get("fused_activation", "NONE"))
        wv = _unpack(w, "b")
        bias = self.folded(self.bias(op, out_depth), wv, depth, -in_zp)
        bounds = [accumulator_bound(b, wv[o * depth:(o + 1) * depth], 128) for o, b in enumerate(bias)]
        rescales = layer_rescales(rq, out_zp, bounds)
        general = general_channels(rescales)
        if len(set(rescales)) == 1:
            rescales = rescales[:1]  # per-tensor: the kernel reads one `Rescale` for every row
        n = op.index
        weight_words = fc_weight_words(wv, out_depth, depth)
        weights = [ConstArray(f"W{n}", "u32", weight_words)]
        kernel, scratch, coded_weights = "fully_connected_s8", 0, ()
        # the coded kernel decodes a row at a time: the rows one after the other, each padded to whole words
        row_bytes = 4 * (-(-depth // 4))
        coded = entropy.encode(v for o in range(out_depth)
                               for v in (*wv[o * depth:(o + 1) * depth], *[0] * (row_bytes - depth))) \
            if self.code_weights and not self.widen_weights else None
        if coded and 4 * len(weight_words) - coded.nbytes >= CODED_MIN_SAVING:
            kernel, scratch = "fully_connected_s8_coded", row_bytes // 4 + 256  # fc_coded_scratch_words
            weights = [ConstArray(f"WC{n}", "u8", tuple(coded.stream)), ConstArray(f"WH{n}", "u32", coded.table),
                       ConstArray(f"WS{n}", "i8", coded.symbols)]
            coded_weights = (4 * len(weight_words), coded.nbytes)
        elif self.widen_weights:
            # the DSP path widens each input row once into scratch (fc_scratch_words)
            kernel, scratch = "fully_connected_s8_widened", 2 * (-(-depth // 4))
            weights = [ConstArray(f"W{n}", "u32", widen_filter_words(weight_words))]
        return Step(
            index=n, op=op.op, kernel=kernel, params_type="FullyConnected",
            generics=requant_variant(rescales, act_min, act_max),
            params={"batches": batches, "accum_depth": depth, "output_depth": out_depth, "output_offset": out_zp,
                    "act_min": act_min, "act_max": act_max},
            arrays=[*weights, ConstArray(f"BF{n}", "i32", tuple(wrap_int32(b) for b in bias)),
                    ConstArray(f"RS{n}", "Rs", rescales)],
            input=x.index, output=y.index, macs=batches * out_depth * depth,
            note=op.options.get("fused_activation", "NONE") + requant_note(general, out_depth)
            + (f", weights entropy-coded: {coded_weights[1]} bytes for {coded_weights[0]}" if coded_weights else ""),
            in_shape=x.shape, out_shape=y.shape, general_channels=general, scratch_words=scratch,
            coded_weights=coded_weights)

    def conv_geometry(self, op: Operator, x: Tensor, y: Tensor, k_h: int, k_w: int) -> dict[str, int]:
        o = op.options
        stride_h, stride_w = o.get("stride_h", 0), o.get("stride_w", 0)
        dil_h, dil_w = o.get("dilation_h", 1), o.get("dilation_w", 1)
        if min(stride_h, stride_w, dil_h, dil_w) <= 0:
            raise self.fail(op, f"invalid strides {stride_h}x{stride_w} or dilation {dil_h}x{dil_w}")
        if len(x.shape) != 4 or len(y.shape) != 4:
            raise self.fail(op, "input and output must be 4-D (NHWC)")
        _, in_h, in_w, _ = x.shape
        batches, out_h, out_w, _ = y.shape
        padding = o.get("padding", "SAME")
        expect_h = quant.compute_out_size(padding, in_h, k_h, stride_h, dil_h)
        expect_w = quant.compute_out_size(padding, in_w, k_w, stride_w, dil_w)
        if (expect_h, expect_w) != (out_h, out_w) or x.shape[0] != batches:
            raise self.fail(op, f"output shape {list(y.shape)} does not match {padding} padding "
                                f"(expected [{x.shape[0]}, {expect_h}, {expect_w}, …])")
        return {"batches": batches, "in_h": in_h, "in_w": in_w, "out_h": out_h, "out_w": out_w,
                "k_h": k_h, "k_w": k_w, "stride_h": stride_h, "stride_w": stride_w, "dil_h": dil_h, "dil_w": dil_w,
                "pad_h": quant.compute_padding(stride_h, dil_h, in_h, k_h, out_h),
                "pad_w": quant.compute_padding(stride_w, dil_w, in_w, k_w, out_w)}

    def conv2d(self, op: Operator, depthwise: bool) -> Step:
        self.single_io(op, (2, 3))
        x = self.activation(op, op.inputs[0], "input")
        w = self.weights(op, op.inputs[1])
        y = self.activation(op, op.outputs[0], "output")
        if len(w.shape) != 4:
            raise self.fail(op, f"its filter has shape {list(w.shape)}; expected 4-D")
        in_c = x.shape[-1] if len(x.shape) == 4 else 0
        if depthwise:
            _, k_h, k_w, out_c = w.shape
            dm = op.options.get("depth_multiplier", 0)
            if in_c == 0 or out_c != in_c * dm:
                raise self.fail(op, f"depth multiplier {dm} does not turn {in_c} input channels into {out_c}")
            q_dim = 3
        else:
            out_c, k_h, k_w, f_in = w.shape
            if f_in != in_c:
                raise self.fail(op, f"grouped convolution ({in_c} input channels, filter depth {f_in})")
            q_dim = 0
        if y.shape[-1] != out_c:
            raise self.fail(op, f"output has {y.shape[-1]} channels, filter makes {out_c}")
        geo = self.conv_geometry(op, x, y, k_h, k_w)
        generics = ""
        wq = w.quantization
        if wq.per_channel and wq.quantized_dimension != q_dim:
            raise self.fail(op, f"its filter is quantized along dimension {wq.quantized_dimension}, expected {q_dim}")
        in_scale, in_zp = self.quant_of(op, x, "input")
        out_scale, out_zp = self.quant_of(op, y, "output")
        rq = self.guarded(op, quant.per_channel_multipliers, in_scale, wq.scale, out_scale, out_c)
        act_min, act_max = self.act_range(op, y, op.options.get("fused_activation", "NONE"))
        wv = _unpack(w, "b")
        bias = self.bias(op, out_c)
        taps = k_h * k_w
        if depthwise:
            # 1HWC: channel c's taps are strided by out_c
            sums = [sum(wv[c::out_c]) for c in range(out_c)]
        else:
            per = taps * in_c
            sums = [sum(wv[c * per:(c + 1) * per]) for c in range(out_c)]
        bias_folded = [b - in_zp * s for b, s in zip(bias, sums)]
        # every tap reads an input value or the zero point, from the folded bias
        if depthwise:
            bounds = [accumulator_bound(bf, wv[c::out_c], 128) for c, bf in enumerate(bias_folded)]
        else:
            bounds = [accumulator_bound(bf, wv[c * per:(c + 1) * per], 128) for c, bf in enumerate(bias_folded)]
        rescales = (tuple(rescale(r, out_zp, bound) for r, bound in zip(rq, bounds)) if depthwise
                    else layer_rescales(rq, out_zp, bounds))
        general = general_channels(rescales)
        # general-path channels sum in plain int32 (wrapping like TFLM's), the others twice the sum
        plain = frozenset(c for c, (_, _, right) in enumerate(rescales) if right == 0)
        bias_arg = tuple(wrap_int32((1 if c in plain else 2) * b) for c, b in enumerate(bias_folded))
        n = op.index
        params = dict(geo)
        params.update({"in_c": in_c, "input_offset": -in_zp, "output_offset": out_zp,
                       "act_min": act_min, "act_max": act_max})
        if depthwise:
            params["depth_multiplier"] = out_c // in_c
            kernel, ptype = "depthwise_conv2d_s8", "DepthwiseConv2d"
            macs = geo["batches"] * geo["out_h"] * geo["out_w"] * out_c * taps
        else:
            params["out_c"] = out_c
            # pre-widened filters: no SXTB16 of weights in the DSP inner loop, twice the filter's flash
            kernel = "conv2d_s8_widened" if self.widen_weights else "conv2d_s8"
            ptype = "Conv2d"
            macs = geo["batches"] * geo["out_h"] * geo["out_w"] * out_c * taps * in_c
        note = (f"{k_h}x{k_w} stride {geo['stride_h']}x{geo['stride_w']} {op.options.get('padding')} "
                f"{op.options.get('fused_activation', 'NONE')}{requant_note(general, out_c)}")
        if depthwise and self.compact:
            # the int8 filter as TFLite stores it (1HWC), no scratch: depthwise.rs `depthwise_conv2d_s8_compact`
            kernel = "depthwise_conv2d_s8_compact"
            dm = out_c // in_c  # depthwise.rs `compact_variant`: the blocking, a const generic
            generics = "::<4, false>" if dm == 1 and in_c % 4 == 0 else "::<4, true>" if dm % 4 == 0 else "::<1, false>"
            arrays = [ConstArray(f"W{n}", "i8", tuple(wv)),
                      ConstArray(f"B2{n}", "i32", bias_arg),
                      ConstArray(f"RS{n}", "Rs", rescales)]
            scratch, stage = 0, 0
        elif depthwise:
            lanes = -(-out_c // 4) * 4
            span_w = (geo["out_w"] - 1) * geo["stride_w"] + (k_w - 1) * geo["dil_w"] + 1
            # int8 rows for multipliers of four (padded to whole words), else int16 lanes: depthwise.rs
            row_words = -(-span_w * in_c // 4) if (out_c // in_c) % 4 == 0 else span_w * lanes // 2
            pad = lanes - out_c
            arrays = [ConstArray(f"W{n}", "u32",
                                 depthwise_filter_words(wv, out_c, k_h, k_w, geo["dil_w"], row_words, in_c, plain)),
                      ConstArray(f"B2{n}", "i32", bias_arg + (0,) * pad),
                      ConstArray(f"RS{n}", "Rs", rescales + ((0, 0, 1),) * pad)]
            scratch, stage = k_h * row_words, 0
        else:
            # the patch of an output pixel, in whole words: im2col scratch for two pixels, staging for one
            words = -(-per // 4)
            filter_words = conv_filter_words(wv, out_c, per)
            arrays = [ConstArray(f"W{n}", "u32", filter_words),
                      ConstArray(f"B2{n}", "i32", bias_arg),
                      ConstArray(f"RS{n}", "Rs", rescales)]
            if self.widen_weights:
                # doubled weights for a layer whose accumulators hold twice the sum: its patches are then plain;
                # the biases and rescales travel in the stream
                arrays = [ConstArray(f"W{n}", "u32", conv_widened_stream(
                    widen_filter_words(filter_words, 1 if general else 2), words, bias_arg, rescales))]
            # staging: the patch and a word of slack for the DSP gather's word-rounded runs (conv.rs stage_bytes)
            scratch, stage = 4 * words, (0 if taps == 1 else 4 * words + 4)
            if self.compact:  # one patch, gathered pixel by pixel: conv.rs `conv2d_s8_compact`
                kernel, scratch, stage = "conv2d_s8_compact", words, 0
        return Step(
            index=n, op=op.op, kernel=kernel, params_type=ptype, params=params, arrays=arrays,
            input=x.index, output=y.index, macs=macs, note=note, in_shape=x.shape, out_shape=y.shape,
            scratch_words=scratch, stage_bytes=stage, takes_stage=kernel in ("conv2d_s8", "conv2d_s8_widened"),
            general_channels=general,
            generics=generics)

    def pool(self, op: Operator) -> Step:
        self.single_io(op, (1,))
        x = self.activation(op, op.inputs[0], "input")
        y = self.activation(op, op.outputs[0], "output")
        o = op.options
        f_h, f_w = o.get("filter_h", 0), o.get("filter_w", 0)
        if f_h <= 0 or f_w <= 0:
            raise self.fail(op, f"invalid pool size {f_h}x{f_w}")
        if len(x.shape) != 4 or len(y.shape) != 4 or x.shape[3] != y.shape[3]:
            raise self.fail(op, "input and output must be 4-D (NHWC) with the same channels")
        in_scale, in_zp = self.quant_of(op, x, "input")
        out_scale, out_zp = self.quant_of(op, y, "output")
        if abs(in_scale - out_scale) > 1e-6 or in_zp != out_zp:
            raise self.fail(op, "input and output quantization differ (TFLM requires them equal)")
        geo = self.conv_geometry(op, x, y, f_h, f_w)
        act_min, act_max = self.act_range(op, y, o.get("fused_activation", "NONE"))
        params = {"batches": geo["batches"], "in_h": geo["in_h"], "in_w": geo["in_w"], "channels": x.shape[3],
                  "out_h": geo["out_h"], "out_w": geo["out_w"], "filter_h": f_h, "filter_w": f_w,
                  "stride_h": geo["stride_h"], "stride_w": geo["stride_w"], "pad_h": geo["pad_h"],
                  "pad_w": geo["pad_w"], "act_min": act_min, "act_max": act_max}
        kernel = "max_pool2d_s8" if op.op == "MAX_POOL_2D" else "average_pool2d_s8"
        note = f"{f_h}x{f_w} stride {geo['stride_h']}x{geo['stride_w']} {o.get('padding')}"
        return Step(index=op.index, op=op.op, kernel=kernel, params_type="Pool2d", params=params, arrays=[],
                    input=x.index, output=y.index, note=note, in_shape=x.shape, out_shape=y.shape)

    def softmax(self, op: Operator) -> Step:
        self.single_io(op, (1,))
        x = self.activation(op, op.inputs[0], "input")
        y = self.activation(op, op.outputs[0], "output")
        if x.shape != y.shape:
            raise self.fail(op, "input and output shapes differ")
        in_scale, _ = self.quant_of(op, x, "input")
        out_scale, out_zp = self.quant_of(op, y, "output")
        if out_zp != -128 or out_scale != 1.0 / 256:
            raise self.fail(op, f"its int8 output has scale {out_scale!r} and zero point {out_zp}; TFLM requires "
                                "1/256 and -128")
        try:
            mult, shift, diff_min = quant.softmax_params(op.options.get("beta", 0.0), in_scale)
        except QuantError as exc:
            # TFLM's PreprocessSoftmaxScaling aborts on the same numbers: no engine runs this model
            raise self.fail(op, f"TFLM aborts on this quantization too, so no engine runs it: {exc} (the input "
                                f"scale {in_scale:.3g} spans logits of only about +-{128 * in_scale:.2g})",
                            "quantize with calibration data that gives the logits their real range (a trained "
                            "model's), or export the model without its final SOFTMAX") from None
        depth = x.shape[-1]
        return Step(index=op.index, op=op.op, kernel="softmax_s8", params_type="Softmax",
                    params={"outer": x.size // depth, "depth": depth, "input_multiplier": mult,
                            "input_left_shift": shift, "diff_min": diff_min},
                    arrays=[], input=x.index, output=y.index, note=f"beta {op.options.get('beta', 0.0):g}",
                    in_shape=x.shape, out_shape=y.shape, in_place_inputs=(x.index,))

    def lookup(self, op: Operator) -> Step:
        """A unary int8 -> int8 operator as a table of its output for each of the 256 inputs."""
        self.single_io(op, (1,))
        x = self.activation(op, op.inputs[0], "input")
        y = self.activation(op, op.outputs[0], "output")
        if x.size != y.size:
            raise self.fail(op, f"input ({x.size} values) and output ({y.size}) differ in size")
        in_scale, in_zp = self.quant_of(op, x, "input")
        out_scale, out_zp = self.quant_of(op, y, "output")
        if op.op == "RELU":
            table = self.guarded(op, quant.relu_table, in_scale, in_zp, out_scale, out_zp)
        elif op.op == "RELU6":
            table = self.guarded(op, quant.relu6_table, in_scale, in_zp)
        elif op.op == "LOGISTIC":
            if out_zp != -128:
                raise self.fail(op, f"its int8 output has zero point {out_zp}; TFLM requires -128")
            table = self.guarded(op, quant.logistic_table, in_scale, in_zp)
        elif op.op == "TANH":
            # TFLM's int8 TANH writes scale 1/128, zero point 0 whatever the output tensor says
            table = self.guarded(op, quant.tanh_table, in_scale, in_zp)
        elif op.op == "HARD_SWISH":
            table = self.guarded(op, quant.hard_swish_table, in_scale, in_zp, out_scale, out_zp)
        elif op.op == "QUANTIZE":
            table = self.guarded(op, quant.quantize_table, in_zp, out_zp, in_scale, out_scale)
        else:
            alpha = op.options.get("alpha", 0.0)
            table = self.guarded(op, quant.leaky_relu_table, alpha, in_scale, in_zp, out_scale, out_zp)
        n = op.index
        return Step(index=n, op=op.op, kernel="lookup_s8", params_type="Lookup", params={"len": x.size},
                    arrays=[ConstArray(f"T{n}", "i8", tuple(table))], input=x.index, output=y.index,
                    note="256-entry table", in_shape=x.shape, out_shape=y.shape, in_place_inputs=(x.index,))

    def float_edge(self, op: Operator) -> Step:
        """QUANTIZE float32 -> int8 or DEQUANTIZE int8 -> float32, element by element (per-tensor scales)."""
        self.single_io(op, (1,))
        quantize = op.op == "QUANTIZE"
        x = self.activation(op, op.inputs[0], "input", "float32" if quantize else "int8")
        y = self.activation(op, op.outputs[0], "output", "int8" if quantize else "float32")
        if x.size != y.size:
            raise self.fail(op, f"input ({x.size} values) and output ({y.size}) differ in size")
        scale, zp = self.quant_of(op, y if quantize else x, "output" if quantize else "input")
        if not (scale > 0 and scale < float("inf")):
            raise self.fail(op, f"its scale {scale} is not a positive number", "re-quantize the model")
        scale_bits = quant.f32_bits(scale)
        kernel, params_type = ("quantize_f32_s8", "Quantize") if quantize else ("dequantize_s8_f32", "Dequantize")
        # QUANTIZE on cores without an FPU: thresholds instead of a software division (convert.rs)
        arrays = [ConstArray(f"Q{op.index}", "u32", tuple(self.guarded(op, quant.quantize_thresholds, scale, zp)))
                  ] if quantize else []
        return Step(index=op.index, op=op.op, kernel=kernel, params_type=params_type,
                    params={"len": x.size, "scale_bits": f"0x{scale_bits:08x}", "zero_point": zp}, arrays=arrays,
                    input=x.index, output=y.index, note=f"{x.dtype} -> {y.dtype}, scale {scale!r}, zero point {zp}",
                    in_shape=x.shape, out_shape=y.shape)

    def operand(self, op: Operator, idx: int, what: str) -> Tensor:
        """An int8 input that may be a constant (a binary operator's second operand, say)."""
        t = self.t[idx]
        if t.is_constant:
            if t.dtype != "int8" or t.data is None or len(t.data) != t.size:
                raise self.fail(op, f"its {what} {t.name!r} is a {t.dtype} constant; the native engine needs int8")
            return t
        return self.activation(op, idx, what)

    def broadcast(self, op: Operator, a: Tensor, b: Tensor, y: Tensor) -> str:
        """The `Broadcast` loop nest: the output shape, right-aligned, and each input's element strides."""
        rank = len(y.shape)
        if rank > BROADCAST_DIMS or len(a.shape) > rank or len(b.shape) > rank:
            raise self.fail(op, f"broadcasting over more than {BROADCAST_DIMS} dimensions")
        dims = (1,) * (BROADCAST_DIMS - rank) + tuple(y.shape)

        def strides(t: Tensor) -> list[int]:
            shape = (1,) * (BROADCAST_DIMS - len(t.shape)) + tuple(t.shape)
            out, step = [0] * BROADCAST_DIMS, 1
            for d in reversed(range(BROADCAST_DIMS)):
                if shape[d] == dims[d]:
                    out[d] = step if dims[d] > 1 else 0
                elif shape[d] != 1:
                    raise self.fail(op, f"input shape {list(t.shape)} does not broadcast to {list(y.shape)}")
                step *= shape[d]
            return out

        return (f"k::Broadcast {{ dims: {list(dims)}, a_strides: {strides(a)}, b_strides: {strides(b)} }}")

    def binary(self, op: Operator) -> Step:
        self.single_io(op, (2,))
        a = self.operand(op, op.inputs[0], "first input")
        b = self.operand(op, op.inputs[1], "second input")
        y = self.activation(op, op.outputs[0], "output")
        if a.is_constant and b.is_constant:
            raise self.fail(op, "both inputs are constants")
        a_scale, a_zp = self.quant_of(op, a, "first input")
        b_scale, b_zp = self.quant_of(op, b, "second input")
        out_scale, out_zp = self.quant_of(op, y, "output")
        activation = op.options.get("fused_activation", "NONE")
        act_min, act_max = self.act_range(op, y, activation)
        params = {"shape": self.broadcast(op, a, b, y), "a_offset": -a_zp, "b_offset": -b_zp}
        if op.op == "MUL":
            # CalculateOpDataMul: double(s1) * double(s2) / double(s_out)
            m, shift = self.guarded(op, quant.quantize_multiplier, a_scale * b_scale / out_scale)
            params.update({"output_multiplier": m, "output_shift": shift})
            kernel, ptype = "mul_s8", "Mul"
        else:
            params.update(self.guarded(op, quant.add_params, a_scale, b_scale, out_scale, op.op == "SUB"))
            params["negate_b"] = op.op == "SUB"
            kernel, ptype = "add_s8", "Add"
        params.update({"output_offset": out_zp, "act_min": act_min, "act_max": act_max})
        n = op.index
        arrays = []
        # each operand's rescaled value from a 256-entry table (2 KiB of flash per operator), one requantization
        # per element left: about a third of the arithmetic per element
        tables = (self.add_tables and op.op != "MUL"
                  and quant.add_tables(params, -a_zp, -b_zp, out_zp, op.op == "SUB"))
        if tables:
            values, output = tables
            params = {"shape": params["shape"], **output, "act_min": act_min, "act_max": act_max}
            kernel, ptype = "add_s8_table", "AddTable"
            arrays = [ConstArray(f"T{n}", "i32", tuple(values))]
        const_inputs = {pos: ConstArray(f"C{n}_{pos}", "i8", _unpack(t, "b"))
                        for pos, t in enumerate((a, b)) if t.is_constant}
        live = [t.index for t in (a, b) if not t.is_constant]
        # an operand laid out like the output (same element count: no broadcasting) can take the output
        overwritable = tuple(t.index for t in (a, b)
                             if not t.is_constant and t.size == y.size and a.index != b.index)
        return Step(index=n, op=op.op, kernel=kernel, params_type=ptype, params=params, arrays=arrays,
                    input=live[0], output=y.index, more_inputs=tuple(live[1:]), const_inputs=const_inputs,
                    note=f"{list(a.shape)} with {list(b.shape)} {activation}", in_shape=a.shape, out_shape=y.shape,
                    in_place_inputs=overwritable, operands=(a.index, b.index))

    def const_ints(self, op: Operator, idx: int, what: str, count: int) -> tuple[int, ...]:
        """A constant int32 operand (paddings, a permutation, slice bounds) of `count` values."""
        t = self.t[idx] if idx >= 0 else None
        if t is None or not t.is_constant or t.dtype != "int32":
            raise self.fail(op, f"its {what} must be a constant int32 tensor")
        if t.size != count:
            raise self.fail(op, f"its {what} has {t.size} values, expected {count}")
        return _unpack(t, "i")

    def copy_io(self, op: Operator, n_inputs: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        self.single_io(op, n_inputs)
        x = self.activation(op, op.inputs[0], "input")
        y = self.activation(op, op.outputs[0], "output")
        if len(x.shape) > BROADCAST_DIMS:
            raise self.fail(op, f"its input has {len(x.shape)} dimensions; the native engine handles up to "
                                f"{BROADCAST_DIMS}")
        return x, y

    def strided_copy(self, op: Operator, x: Tensor, y: Tensor, dims, in_start: int, in_strides, out_start: int,
                     out_strides, fill: int | None = None, note: str = "") -> Step:
        """A `StridedCopy` step; the loop nest is left-padded to five dimensions."""
        lead = BROADCAST_DIMS - len(dims)
        params = {"dims": [1] * lead + list(dims), "in_start": in_start, "in_strides": [0] * lead + list(in_strides),
                  "out_start": out_start, "out_strides": [0] * lead + list(out_strides), "out_len": y.size,
                  "pad": fill is not None, "fill": 0 if fill is None else fill}
        return Step(index=op.index, op=op.op, kernel="strided_copy_s8", params_type="StridedCopy", params=params,
                    arrays=[], input=x.index, output=y.index, note=note, in_shape=x.shape, out_shape=y.shape)

    def pad(self, op: Operator) -> Step:
        """PAD / PADV2: the output filled with the pad value, then the input copied into its middle."""
        x, y = self.copy_io(op, (2, 3) if op.op == "PADV2" else (2,))
        rank = len(x.shape)
        pads = self.const_ints(op, op.inputs[1], "paddings", 2 * rank)
        if any(p < 0 for p in pads):
            raise self.fail(op, f"negative paddings {list(pads)}")
        if tuple(d + pads[2 * i] + pads[2 * i + 1] for i, d in enumerate(x.shape)) != tuple(y.shape):
            raise self.fail(op, f"paddings {list(pads)} do not turn {list(x.shape)} into {list(y.shape)}")
        out_scale, out_zp = self.quant_of(op, y, "output")
        fill = out_zp
        if len(op.inputs) == 3 and op.inputs[2] >= 0:
            c = self.t[op.inputs[2]]
            if not c.is_constant or c.dtype != "int8" or c.size != 1:
                raise self.fail(op, "its pad value must be one constant int8")
            if self.quant_of(op, c, "pad value") != (out_scale, out_zp):
                raise self.fail(op, "its pad value is quantized differently from the output (TFLM requires the same)")
            fill = _unpack(c, "b")[0]
        out_strides = contiguous_strides(y.shape)
        start = sum(pads[2 * i] * s for i, s in enumerate(out_strides))
        return self.strided_copy(op, x, y, x.shape, 0, contiguous_strides(x.shape), start, out_strides, fill,
                                 note=f"paddings {[list(pads[i:i + 2]) for i in range(0, 2 * rank, 2)]}, value {fill}")

    def transpose(self, op: Operator) -> Step:
        x, y = self.copy_io(op, (2,))
        rank = len(x.shape)
        perm = self.const_ints(op, op.inputs[1], "permutation", rank)
        if sorted(perm) != list(range(rank)) or tuple(x.shape[p] for p in perm) != tuple(y.shape):
            raise self.fail(op, f"permutation {list(perm)} does not turn {list(x.shape)} into {list(y.shape)}")
        in_strides = contiguous_strides(x.shape)
        return self.strided_copy(op, x, y, y.shape, 0, [in_strides[p] for p in perm], 0,
                                 contiguous_strides(y.shape), note=f"permutation {list(perm)}")

    def strided_slice(self, op: Operator) -> Step:
        """STRIDED_SLICE: begin, end and strides resolved per axis as `reference_ops::StartForAxis` /
        `EndForAxis` do. TFLM passes no ellipsis or new-axis mask to its kernel, so models using them are
        refused rather than guessed at."""
        x, y = self.copy_io(op, (4,))
        rank = len(x.shape)
        begin, end, strides = (self.const_ints(op, op.inputs[i], what, rank)
                               for i, what in ((1, "begin"), (2, "end"), (3, "strides")))
        o = op.options
        if o.get("ellipsis_mask", 0) or o.get("new_axis_mask", 0) or o.get("offset", False):
            raise self.fail(op, "it uses an ellipsis or new-axis mask or offset bounds")
        starts, counts = [], []
        for axis, size in enumerate(x.shape):
            stride, bit = strides[axis], 1 << axis
            if stride == 0:
                raise self.fail(op, f"stride 0 on axis {axis}")
            start = begin[axis] + (size if begin[axis] < 0 else 0)
            start = min(max(start, 0), size) if stride > 0 else min(max(start, -1), size - 1)
            if o.get("begin_mask", 0) & bit:
                start = 0 if stride > 0 else size - 1
            if o.get("shrink_axis_mask", 0) & bit:
                stop = start if start >= size else start + 1
            else:
                stop = end[axis] + (size if end[axis] < 0 else 0)
                stop = min(max(stop, 0), size) if stride > 0 else min(max(stop, -1), size - 1)
                if o.get("end_mask", 0) & bit:
                    stop = size if stride > 0 else -1
            starts.append(start)
            counts.append(max(0, -(-(stop - start) // stride)))
        kept = [c for axis, c in enumerate(counts) if not o.get("shrink_axis_mask", 0) & (1 << axis)]
        if tuple(kept) != tuple(y.shape) or 0 in counts:
            raise self.fail(op, f"the slice has shape {kept}, the output {list(y.shape)}")
        if self.quant_of(op, x, "input") != self.quant_of(op, y, "output"):
            raise self.fail(op, "input and output quantization differ")
        in_strides = contiguous_strides(x.shape)
        return self.strided_copy(op, x, y, counts, sum(b * s for b, s in zip(starts, in_strides)),
                                 [st * s for st, s in zip(strides, in_strides)], 0, contiguous_strides(counts),
                                 note=f"from {starts} by {list(strides)}")

    def concatenation(self, op: Operator) -> Step:
        """CONCATENATION: TFLM's int8 kernel requires every input to share the output's scale and zero point
        (the converter inserts QUANTIZE operators where they differ), so it only copies."""
        if not 1 <= len(op.inputs) <= MAX_CONCAT_INPUTS or len(op.outputs) != 1:
            raise self.fail(op, f"unexpected number of inputs/outputs ({len(op.inputs)}/{len(op.outputs)})")
        if op.options.get("fused_activation", "NONE") != "NONE":
            raise self.fail(op, "it has a fused activation (TFLM supports none)")
        y = self.activation(op, op.outputs[0], "output")
        xs = [self.operand(op, i, f"input {k}") for k, i in enumerate(op.inputs)]
        if all(x.is_constant for x in xs):
            raise self.fail(op, "all its inputs are constants")
        rank = len(y.shape)
        axis = op.options.get("axis", 0)
        axis += rank if axis < 0 else 0
        if not 0 <= axis < rank:
            raise self.fail(op, f"axis {op.options.get('axis', 0)} is outside the output's {rank} dimensions")
        out_q = self.quant_of(op, y, "output")
        for k, x in enumerate(xs):
            if len(x.shape) != rank or any(a != b for d, (a, b) in enumerate(zip(x.shape, y.shape)) if d != axis):
                raise self.fail(op, f"input {k} has shape {list(x.shape)}, which does not concatenate into "
                                    f"{list(y.shape)} along axis {axis}")
            if self.quant_of(op, x, f"input {k}") != out_q:
                raise self.fail(op, f"input {k} is quantized differently from the output (TFLM requires the same "
                                    "scale and zero point for int8)")
        if sum(x.shape[axis] for x in xs) != y.shape[axis]:
            raise self.fail(op, f"the inputs' sizes along axis {axis} do not add up to the output's")
        n = op.index
        outer = 1
        for d in y.shape[:axis]:
            outer *= d
        const_inputs = {k: ConstArray(f"C{n}_{k}", "i8", _unpack(x, "b")) for k, x in enumerate(xs) if x.is_constant}
        live = [x.index for x in xs if not x.is_constant]
        return Step(index=n, op=op.op, kernel="concatenation_s8", params_type=f"Concatenation<{len(xs)}>",
                    params={"outer": outer, "sizes": [x.size // outer for x in xs]}, arrays=[], input=live[0],
                    output=y.index, more_inputs=tuple(live[1:]), const_inputs=const_inputs, inputs_as_array=True,
                    note=f"{len(xs)} inputs along axis {axis}", in_shape=xs[0].shape, out_shape=y.shape)

    def mean(self, op: Operator) -> Step:
        """MEAN over any axes, keep_dims either way: the kept and the reduced axes as two loop nests."""
        x, y = self.copy_io(op, (2,))
        rank = len(x.shape)
        axis_t = self.t[op.inputs[1]]
        raw_axes = self.const_ints(op, op.inputs[1], "axes", axis_t.size)
        axes: list[int] = []
        for a in raw_axes:  # ResolveAxis: negative axes count from the end, repeats are dropped
            r = a + rank if a < 0 else a
            if not 0 <= r < rank:
                raise self.fail(op, f"axis {a} is outside the input's {rank} dimensions")
            if r not in axes:
                axes.append(r)
        keep_dims = op.options.get("keep_dims", False)
        expected = [1 if d in axes else n for d, n in enumerate(x.shape) if keep_dims or d not in axes]
        if tuple(expected) != tuple(y.shape):
            raise self.fail(op, f"reducing axes {axes} of {list(x.shape)} does not give {list(y.shape)}")
        in_scale, in_zp = self.quant_of(op, x, "input")
        out_scale, out_zp = self.quant_of(op, y, "output")
        kept = [d for d in range(rank) if d not in axes]
        count = 1
        for d in axes:
            count *= x.shape[d]
        multiplier, shift = self.guarded(op, quant.mean_multiplier, in_scale, out_scale, count)
        strides = contiguous_strides(x.shape)

        def nest(dims: list[int]) -> tuple[list[int], list[int]]:
            lead = BROADCAST_DIMS - len(dims)
            return [1] * lead + [x.shape[d] for d in dims], [0] * lead + [strides[d] for d in dims]

        out_dims, out_strides = nest(kept)
        reduce_dims, reduce_strides = nest(sorted(axes))
        zero_point_sum = (in_zp * count + (1 << 31)) % (1 << 32) - (1 << 31)  # int32 wrap-around, as in TFLM
        return Step(index=op.index, op=op.op, kernel="mean_s8", params_type="Mean",
                    params={"out_dims": out_dims, "out_strides": out_strides, "reduce_dims": reduce_dims,
                            "reduce_strides": reduce_strides, "zero_point_sum": zero_point_sum,
                            "multiplier": multiplier, "shift": shift, "output_offset": out_zp},
                    arrays=[], input=x.index, output=y.index,
                    note=f"axes {axes}{' keep_dims' if keep_dims else ''}", in_shape=x.shape, out_shape=y.shape)

    def alias(self, op: Operator) -> Step:
        if len(op.inputs) < 1 or len(op.outputs) != 1:
            raise self.fail(op, "unexpected number of inputs/outputs")
        dtype = "float32" if self.t[op.inputs[0]].dtype == "float32" else "int8"  # a float input reshaped
        x = self.activation(op, op.inputs[0], "input", dtype)
        y = self.activation(op, op.outputs[0], "output", dtype)
        if x.size != y.size:
            raise self.fail(op, f"changes the element count ({x.size} -> {y.size})")
        if x.quantization != y.quantization:
            raise self.fail(op, "input and output quantization differ")
        return Step(index=op.index, op=op.op, kernel="", params_type="", params={}, arrays=[],
                    input=x.index, output=y.index, note="no-op: output shares the input's bytes",
                    in_shape=x.shape, out_shape=y.shape)

    def lower(self) -> Program:
        g = self.graph
        if len(g.inputs) != 1 or len(g.outputs) != 1:
            raise UserError(f"{self.model.source}: the model has {len(g.inputs)} inputs and {len(g.outputs)} "
                            "outputs; the native engine takes exactly one of each", TFLM_HINT)
        for role, idx in (("input", g.inputs[0]), ("output", g.outputs[0])):
            t = self.t[idx]
            if t.dtype not in IO_DTYPES:
                raise UserError(f"{self.model.source}: the model's {role} tensor {t.name!r} is {t.dtype}; the "
                                "native engine takes int8 or float32 input and output",
                                "set `quantization.io: int8`, or use `engine: tflm`")
        steps = []
        alias_of: dict[int, int] = {}
        for op in g.operators:
            if op.op not in SUPPORTED_OPS:
                raise self.fail(op, "operator not supported by the native engine")
            if op.op == "FULLY_CONNECTED":
                step = self.fully_connected(op)
            elif op.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                step = self.conv2d(op, depthwise=op.op == "DEPTHWISE_CONV_2D")
            elif op.op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
                step = self.pool(op)
            elif op.op == "SOFTMAX":
                step = self.softmax(op)
            elif op.op == "DEQUANTIZE" or (op.op == "QUANTIZE" and op.inputs
                                            and self.t[op.inputs[0]].dtype == "float32"):
                step = self.float_edge(op)
            elif op.op in LOOKUP_OPS:
                step = self.lookup(op)
            elif op.op in BINARY_OPS:
                step = self.binary(op)
            elif op.op in ("PAD", "PADV2"):
                step = self.pad(op)
            elif op.op == "TRANSPOSE":
                step = self.transpose(op)
            elif op.op == "STRIDED_SLICE":
                step = self.strided_slice(op)
            elif op.op == "CONCATENATION":
                step = self.concatenation(op)
            elif op.op == "MEAN":
                step = self.mean(op)
            else:
                step = self.alias(op)
                alias_of[step.output] = alias_of.get(step.input, step.input)
            steps.append(step)
        if self.compact:
            steps = [pack_channels(s) for s in steps]
        return Program(steps=steps, tensors=self.t, input=g.inputs[0], output=g.outputs[0], alias_of=alias_of,
                       widened_weights=self.widen_weights, coded_weights=self.code_weights)


def pack_channels(step: Step) -> Step:
    """A conv or depthwise step with its biases and rescales bit-packed (channels.py) when that saves flash."""
    if step.kernel not in PACKED_KERNELS:
        return step
    n = step.index
    named = {a.name: a for a in step.arrays}
    bias, rescales = named.get(f"B2{n}"), named.get(f"RS{n}")
    if bias is None or rescales is None:
        return step
    packed = channels.pack(bias.values, tuple(m for m, _, _ in rescales.values),
                           tuple(rescale_word(add, right) for _, add, right in rescales.values))
    if packed is None or packed.nbytes >= bias.nbytes + rescales.nbytes:
        return step
    arrays = []
    for a in step.arrays:
        if a is bias:
            arrays += [ConstArray(f"CW{n}", "u32", packed.words), ConstArray(f"CA{n}", "i32", packed.adds)]
        elif a is not rescales:
            arrays.append(a)
    return dataclasses.replace(step, arrays=arrays, packed=packed)


# the kernels whose biases and rescales `optimize: size` packs (their arrays `B2{n}`, `RS{n}`)
PACKED_KERNELS = ("conv2d_s8_compact", "depthwise_conv2d_s8_compact")


def lower(model: Model, widen_weights: bool = False, code_weights: bool = False, add_tables: bool = True,
          compact: bool = False) -> Program:
    """`widen_weights`: convolution filters and fully connected weights pre-widened to int16 pairs (faster on
    the DSP path, twice their flash); `code_weights` (not with `widen_weights`): fully connected weights
    entropy-coded (entropy.py) in the layers where that saves at least `CODED_MIN_SAVING` bytes of flash
    (decoded a row at a time: slower); `add_tables`: ADD and SUB from precomputed operand tables (2 KiB of flash
    each, a third of the arithmetic); `compact` (`optimize: size`): int8 depthwise filters, channel by channel,
    and conv and depthwise biases and rescales bit-packed where that saves flash (channels.py). Code generation
    choices, the arithmetic is the same."""
    return _Lowering(model, widen_weights, code_weights, add_tables, compact).lower()
