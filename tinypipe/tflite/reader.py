"""A bounds-checked FlatBuffers reader for `.tflite` models, written from TFLite's schema (schema v3c field order).

FlatBuffers in brief: the file starts with a uoffset (u32, little-endian) to the root table. A table starts with
an soffset (i32) back to its vtable: u16 vtable size, u16 table size, then one u16 per field giving the field's
offset inside the table (0 = absent, take the schema default). Sub-tables, vectors and strings are referenced by
a u32 offset relative to where the offset itself is stored; a vector is a u32 element count then the elements.

Every read here checks its bounds, so a truncated or corrupted file raises `UserError` naming the file and what
is wrong; the walk follows the schema's tree (never the file's own pointers in a loop), so it always ends.
Only the fields tinypipe uses are decoded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinypipe.core.errors import UserError

FILE_IDENTIFIER = b"TFL3"

# enum BuiltinOperator, values 0..209 in order (tensorflow/lite/schema/schema.fbs)
BUILTIN_OPERATORS: tuple[str, ...] = tuple("""
ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE EMBEDDING_LOOKUP FLOOR
FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D LOCAL_RESPONSE_NORMALIZATION LOGISTIC
LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX
SPACE_TO_DEPTH SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD
UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE
UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE
BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL
LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT
RSQRT SHAPE POW ARG_MIN FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT
UNPACK REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR
LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK
ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4
NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES
CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG REAL COMPLEX_ABS HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT
HASHTABLE_SIZE REDUCE_ALL CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS
RANDOM_STANDARD_NORMAL BUCKETIZE RANDOM_UNIFORM MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE RELU_0_TO_1
UNSORTED_SEGMENT_PROD UNSORTED_SEGMENT_MAX UNSORTED_SEGMENT_SUM ATAN2 UNSORTED_SEGMENT_MIN SIGN BITCAST
BITWISE_XOR RIGHT_SHIFT STABLEHLO_LOGISTIC STABLEHLO_ADD STABLEHLO_DIVIDE STABLEHLO_MULTIPLY
STABLEHLO_MAXIMUM STABLEHLO_RESHAPE STABLEHLO_CLAMP STABLEHLO_CONCATENATE STABLEHLO_BROADCAST_IN_DIM
STABLEHLO_CONVOLUTION STABLEHLO_SLICE STABLEHLO_CUSTOM_CALL STABLEHLO_REDUCE STABLEHLO_ABS STABLEHLO_AND
STABLEHLO_COSINE STABLEHLO_EXPONENTIAL STABLEHLO_FLOOR STABLEHLO_LOG STABLEHLO_MINIMUM STABLEHLO_NEGATE
STABLEHLO_OR STABLEHLO_POWER STABLEHLO_REMAINDER STABLEHLO_RSQRT STABLEHLO_SELECT STABLEHLO_SUBTRACT
STABLEHLO_TANH STABLEHLO_SCATTER STABLEHLO_COMPARE STABLEHLO_CONVERT STABLEHLO_DYNAMIC_SLICE
STABLEHLO_DYNAMIC_UPDATE_SLICE STABLEHLO_PAD STABLEHLO_IOTA STABLEHLO_DOT_GENERAL STABLEHLO_REDUCE_WINDOW
STABLEHLO_SORT STABLEHLO_WHILE STABLEHLO_GATHER STABLEHLO_TRANSPOSE DILATE STABLEHLO_RNG_BIT_GENERATOR
REDUCE_WINDOW STABLEHLO_COMPOSITE STABLEHLO_SHIFT_LEFT STABLEHLO_CBRT STABLEHLO_CASE
""".split())
assert len(BUILTIN_OPERATORS) == 210 and BUILTIN_OPERATORS[9] == "FULLY_CONNECTED"

# enum TensorType
TENSOR_TYPES = ("float32", "float16", "int32", "uint8", "int64", "string", "bool", "int16", "complex64", "int8",
                "float64", "complex128", "uint64", "resource", "variant", "uint32", "uint16", "int4", "bfloat16",
                "int2", "uint4", "float8_e4m3fn", "float8_e5m2")
# bytes per element for the types a kernel can meet (sub-byte and opaque types have none)
DTYPE_SIZES = {"float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "bool": 1, "int16": 2,
               "complex64": 8, "int8": 1, "float64": 8, "complex128": 16, "uint64": 8, "uint32": 4, "uint16": 2,
               "bfloat16": 2}
PADDINGS = ("SAME", "VALID")
ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")

# union BuiltinOptions: the option tables decoded here, by union type code
_CONV_2D_OPTIONS = 1
_DEPTHWISE_CONV_2D_OPTIONS = 2
_POOL_2D_OPTIONS = 5
_FULLY_CONNECTED_OPTIONS = 8
_SOFTMAX_OPTIONS = 9
_CONCATENATION_OPTIONS = 10
_ADD_OPTIONS = 11
_RESHAPE_OPTIONS = 17
_MUL_OPTIONS = 21
_SUB_OPTIONS = 28
_REDUCER_OPTIONS = 27
_SQUEEZE_OPTIONS = 30
_STRIDED_SLICE_OPTIONS = 32
_LEAKY_RELU_OPTIONS = 75


@dataclass(frozen=True)
class Quantization:
    scale: tuple[float, ...]  # float32 values, exactly as stored
    zero_point: tuple[int, ...]
    quantized_dimension: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # "int8", "int32", "float32", … (TensorType in lower case)
    buffer: int  # index into the model's buffers; 0 is the empty sentinel
    data: bytes | None  # constant contents (weights, biases, shapes); None for activations
    quantization: Quantization | None
    is_variable: bool = False

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.size * DTYPE_SIZES.get(self.dtype, 0)

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class Operator:
    index: int
    op: str  # builtin operator name, e.g. "CONV_2D"; "CUSTOM" for custom ops (see custom_code)
    version: int
    inputs: tuple[int, ...]  # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    custom_code: str | None = None
    options_type: int = 0  # the BuiltinOptions union's type as stored (0: none)


@dataclass(frozen=True)
class Subgraph:
    name: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class Model:
    source: str
    version: int
    description: str
    subgraphs: tuple[Subgraph, ...]

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]


class _Malformed(Exception):
    """Internal: what is wrong with the bytes; `parse_model` turns it into a UserError naming the file."""


class _Bytes:
    """Little-endian reads that check their bounds first."""

    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)

    def need(self, pos: int, length: int, what: str) -> None:
        if pos < 0 or length < 0 or pos + length > self.size:
            raise _Malformed(f"{what} at byte {pos} (+{length}) lies outside the file ({self.size} bytes)")

    def unpack(self, fmt: str, pos: int, what: str):
        size = struct.calcsize(fmt)
        self.need(pos, size, what)
        return struct.unpack_from("<" + fmt, self.data, pos)[0]


_SCALAR_SIZES = {"b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "q": 8, "Q": 8, "f": 4}


class _Table:
    """One FlatBuffers table: fields by slot number (slot n is the schema's n-th field, vtable offset 4 + 2n)."""

    def __init__(self, buf: _Bytes, pos: int, what: str):
        self.buf = buf
        self.pos = pos
        self.what = what
        vtable = pos - buf.unpack("i", pos, what)
        self.vtable = vtable
        self.vtable_size = buf.unpack("H", vtable, f"{what} vtable")
        self.table_size = buf.unpack("H", vtable + 2, f"{what} vtable")
        if self.vtable_size < 4 or self.vtable_size % 2:
            raise _Malformed(f"{what} has a bad vtable size {self.vtable_size}")
        if self.table_size < 4:
            raise _Malformed(f"{what} has a bad table size {self.table_size}")
        buf.need(vtable, self.vtable_size, f"{what} vtable")
        buf.need(pos, self.table_size, what)

    def _field(self, slot: int, size: int, name: str) -> int | None:
        entry = 4 + 2 * slot
        if entry >= self.vtable_size:
            return None
        offset = self.buf.unpack("H", self.vtable + entry, f"{self.what} vtable")
        if offset == 0:
            return None
        if offset + size > self.table_size:
            raise _Malformed(f"{self.what}.{name} lies outside its table")
        return self.pos + offset

    def scalar(self, slot: int, fmt: str, default, name: str):
        pos = self._field(slot, _SCALAR_SIZES[fmt], name)
        return default if pos is None else self.buf.unpack(fmt, pos, f"{self.what}.{name}")

    def _target(self, slot: int, name: str) -> int | None:
        pos = self._field(slot, 4, name)
        if pos is None:
            return None
        return pos + self.buf.unpack("I", pos, f"{self.what}.{name}")

    def table(self, slot: int, name: str) -> "_Table | None":
        target = self._target(slot, name)
        return None if target is None else _Table(self.buf, target, f"{self.what}.{name}")

    def _vector(self, slot: int, elem_size: int, name: str) -> tuple[int, int] | None:
        target = self._target(slot, name)
        if target is None:
            return None
        count = self.buf.unpack("I", target, f"{self.what}.{name} length")
        self.buf.need(target + 4, count * elem_size, f"{self.what}.{name} ({count} elements)")
        return target + 4, count

    def scalars(self, slot: int, fmt: str, name: str) -> tuple | None:
        vec = self._vector(slot, _SCALAR_SIZES[fmt], name)
        if vec is None:
            return None
        start, count = vec
        return struct.unpack_from(f"<{count}{fmt}", self.buf.data, start)

    def raw_bytes(self, slot: int, name: str) -> bytes | None:
        vec = self._vector(slot, 1, name)
        if vec is None:
            return None
        start, count = vec
        return bytes(self.buf.data[start:start + count])

    def string(self, slot: int, name: str) -> str | None:
        raw = self.raw_bytes(slot, name)
        return None if raw is None else raw.decode("utf-8", errors="replace")

    def tables(self, slot: int, name: str) -> list["_Table"]:
        vec = self._vector(slot, 4, name)
        if vec is None:
            return []
        start, count = vec
        out = []
        for i in range(count):
            pos = start + 4 * i
            out.append(_Table(self.buf, pos + self.buf.unpack("I", pos, f"{self.what}.{name}[{i}]"),
                              f"{self.what}.{name}[{i}]"))
        return out


def _enum(table: tuple[str, ...], value: int, what: str) -> str:
    if not 0 <= value < len(table):
        raise _Malformed(f"{what} has unknown value {value}")
    return table[value]


_ACTIVATION = ("fused_activation", "fused_activation_function", 0)
_DILATION = (("dilation_w", "dilation_w_factor", 1), ("dilation_h", "dilation_h_factor", 1))
# the fields after padding, stride_w and stride_h, in schema order: (our key, schema name, default)
_WINDOW_OPTIONS = {
    _CONV_2D_OPTIONS: (_ACTIVATION, *_DILATION),
    _DEPTHWISE_CONV_2D_OPTIONS: (("depth_multiplier", "depth_multiplier", 0), _ACTIVATION, *_DILATION),
    _POOL_2D_OPTIONS: (("filter_w", "filter_width", 0), ("filter_h", "filter_height", 0), _ACTIVATION),
}


def _options(kind: int, opts: _Table | None) -> dict[str, Any]:
    """Decode the builtin options tables of the ops tinypipe handles; schema defaults fill absent fields."""
    if opts is None:
        return {}
    if kind in _WINDOW_OPTIONS:  # conv, depthwise and pool: padding and strides, then their own fields in order
        window = {"padding": _enum(PADDINGS, opts.scalar(0, "b", 0, "padding"), "padding"),
                  "stride_w": opts.scalar(1, "i", 0, "stride_w"), "stride_h": opts.scalar(2, "i", 0, "stride_h")}
        for slot, (key, name, default) in enumerate(_WINDOW_OPTIONS[kind], start=3):
            value = opts.scalar(slot, "b" if key == "fused_activation" else "i", default, name)
            window[key] = _enum(ACTIVATIONS, value, "activation") if key == "fused_activation" else value
        return window
    if kind == _FULLY_CONNECTED_OPTIONS:
        return {
            "fused_activation": _enum(ACTIVATIONS, opts.scalar(0, "b", 0, "fused_activation_function"), "activation"),
            "weights_format": opts.scalar(1, "b", 0, "weights_format"),
            "keep_num_dims": bool(opts.scalar(2, "B", 0, "keep_num_dims")),
            "asymmetric_quantize_inputs": bool(opts.scalar(3, "B", 0, "asymmetric_quantize_inputs")),
        }
    if kind == _SOFTMAX_OPTIONS:
        return {"beta": opts.scalar(0, "f", 0.0, "beta")}
    if kind == _RESHAPE_OPTIONS:
        new_shape = opts.scalars(0, "i", "new_shape")
        return {"new_shape": None if new_shape is None else tuple(new_shape)}
    if kind == _SQUEEZE_OPTIONS:
        return {"squeeze_dims": tuple(opts.scalars(0, "i", "squeeze_dims") or ())}
    if kind == _CONCATENATION_OPTIONS:
        return {"axis": opts.scalar(0, "i", 0, "axis"),
                "fused_activation": _enum(ACTIVATIONS, opts.scalar(1, "b", 0, "fused_activation_function"),
                                          "activation")}
    if kind == _STRIDED_SLICE_OPTIONS:
        masks = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")
        out = {name: opts.scalar(slot, "i", 0, name) for slot, name in enumerate(masks)}
        out["offset"] = bool(opts.scalar(5, "B", 0, "offset"))
        return out
    if kind == _REDUCER_OPTIONS:
        return {"keep_dims": bool(opts.scalar(0, "B", 0, "keep_dims"))}
    if kind == _LEAKY_RELU_OPTIONS:
        return {"alpha": opts.scalar(0, "f", 0.0, "alpha")}
    if kind in (_ADD_OPTIONS, _MUL_OPTIONS, _SUB_OPTIONS):
        return {"fused_activation": _enum(ACTIVATIONS, opts.scalar(0, "b", 0, "fused_activation_function"),
                                          "activation")}
    return {}


def _buffers(buf: _Bytes, model: _Table) -> list[bytes | None]:
    out: list[bytes | None] = []
    for i, table in enumerate(model.tables(4, "buffers")):
        data = table.raw_bytes(0, "data")
        if not data:
            # models over 2 GB keep buffers after the flatbuffer: offset/size from the file's start (1 = unset)
            offset = table.scalar(1, "Q", 0, "offset")
            size = table.scalar(2, "Q", 0, "size")
            if offset > 1:
                buf.need(offset, size, f"buffers[{i}] (external)")
                data = bytes(buf.data[offset:offset + size])
        out.append(data or None)
    return out


def _tensor(index: int, table: _Table, buffers: list[bytes | None]) -> Tensor:
    shape = tuple(table.scalars(0, "i", "shape") or ())
    dtype = _enum(TENSOR_TYPES, table.scalar(1, "b", 0, "type"), f"{table.what}.type")
    buffer = table.scalar(2, "I", 0, "buffer")
    if buffer >= max(len(buffers), 1):
        raise _Malformed(f"{table.what} points at buffer {buffer}, but the model has {len(buffers)}")
    data = buffers[buffer] if buffers else None
    name = table.string(3, "name") or f"tensor_{index}"
    quant = None
    q = table.table(4, "quantization")
    if q is not None:
        scale = q.scalars(2, "f", "scale")
        zero_point = q.scalars(3, "q", "zero_point")
        if scale:
            quant = Quantization(tuple(scale), tuple(zero_point or (0,) * len(scale)),
                                 q.scalar(6, "i", 0, "quantized_dimension"))
    if data is not None and dtype in DTYPE_SIZES and all(d >= 0 for d in shape):
        expected = 1
        for d in shape:
            expected *= d
        expected *= DTYPE_SIZES[dtype]
        if len(data) < expected:
            raise _Malformed(f"tensor {index} ({name!r}, shape {list(shape)}, {dtype}) needs {expected} bytes "
                             f"but its buffer {buffer} holds {len(data)}")
    return Tensor(index=index, name=name, shape=shape, dtype=dtype, buffer=buffer, data=data, quantization=quant,
                  is_variable=bool(table.scalar(5, "B", 0, "is_variable")))


def _operator_codes(model: _Table) -> list[tuple[str, int, str | None]]:
    codes = []
    for table in model.tables(1, "operator_codes"):
        deprecated = table.scalar(0, "b", 0, "deprecated_builtin_code")
        custom = table.string(1, "custom_code")
        version = table.scalar(2, "i", 1, "version")
        builtin = table.scalar(3, "i", 0, "builtin_code")
        # schema 3a: the int8 deprecated code saturates at 127 (PLACEHOLDER_FOR_GREATER_OP_CODES); the real
        # code is the larger of the two (TFLM's GetBuiltinCode)
        code = max(builtin, deprecated)
        name = BUILTIN_OPERATORS[code] if 0 <= code < len(BUILTIN_OPERATORS) else f"BUILTIN_{code}"
        codes.append((name, version, custom))
    return codes


def _subgraph(index: int, table: _Table, buffers, codes) -> Subgraph:
    tensors = tuple(_tensor(i, t, buffers) for i, t in enumerate(table.tables(0, "tensors")))
    n = len(tensors)

    def indices(values, what: str, optional: bool) -> tuple[int, ...]:
        values = tuple(values or ())
        for v in values:
            if not (0 <= v < n or (optional and v == -1)):
                raise _Malformed(f"{what} names tensor {v}, but subgraph {index} has {n} tensors")
        return values

    inputs = indices(table.scalars(1, "i", "inputs"), f"subgraph {index} inputs", False)
    outputs = indices(table.scalars(2, "i", "outputs"), f"subgraph {index} outputs", False)
    operators = []
    for i, op in enumerate(table.tables(3, "operators")):
        opcode = op.scalar(0, "I", 0, "opcode_index")
        if opcode >= len(codes):
            raise _Malformed(f"operator {i} uses opcode {opcode}, but the model has {len(codes)} operator codes")
        name, version, custom = codes[opcode]
        op_inputs = indices(op.scalars(1, "i", "inputs"), f"operator {i} ({name}) inputs", True)
        op_outputs = indices(op.scalars(2, "i", "outputs"), f"operator {i} ({name}) outputs", False)
        kind = op.scalar(3, "B", 0, "builtin_options_type")
        options = _options(kind, op.table(4, "builtin_options") if kind else None)
        operators.append(Operator(index=i, op=name, version=version, inputs=op_inputs, outputs=op_outputs,
                                  options=options, custom_code=custom if name == "CUSTOM" else None,
                                  options_type=kind))
    return Subgraph(name=table.string(4, "name") or "", tensors=tensors, operators=tuple(operators),
                    inputs=inputs, outputs=outputs)


def parse_model(data: bytes, source: str = "<bytes>") -> Model:
    """Parse .tflite bytes; `source` names the file in error messages."""
    hint = "re-export the model with TFLiteConverter, or check that the file was copied completely"
    if len(data) < 8:
        raise UserError(f"{source}: not a .tflite model: only {len(data)} bytes", hint)
    if data[4:8] != FILE_IDENTIFIER:
        raise UserError(f"{source}: not a .tflite model: file identifier is {bytes(data[4:8])!r}, "
                        f"expected {FILE_IDENTIFIER!r}", hint)
    buf = _Bytes(bytes(data))
    try:
        root = _Table(buf, buf.unpack("I", 0, "root offset"), "model")
        version = root.scalar(0, "I", 0, "version")
        codes = _operator_codes(root)
        buffers = _buffers(buf, root)
        subgraphs = tuple(_subgraph(i, t, buffers, codes) for i, t in enumerate(root.tables(2, "subgraphs")))
        description = root.string(3, "description") or ""
    except _Malformed as exc:
        raise UserError(f"{source}: corrupt .tflite model: {exc}", hint) from None
    if not subgraphs:
        raise UserError(f"{source}: corrupt .tflite model: it has no subgraphs", hint)
    return Model(source=source, version=version, description=description, subgraphs=subgraphs)


def read_model(path: Path | str) -> Model:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the model: {exc.strerror or exc}") from None
    return parse_model(data, str(path))
