"""Write the generated `model.rs`: constants, weights as `static` arrays (flash), one static arena, and
`invoke` calling `tinyml_kernels` step by step. The text is meant to be read: each step carries a comment
with its operator, shapes and arena offsets.

Every arena range a step uses is asserted in a `const` item next to it (`k::io_fits` and friends), so a
planning bug fails `cargo build` with a message naming the operator; the run-time split that follows cannot
fail then, and should it ever, it panics naming the operator instead of skipping it. Lints are allowed only
on the items that need it, each with its reason."""

from __future__ import annotations

from tinypipe.engines.native.lower import ConstArray, Program, Step, rescale_word
from tinypipe.tflite.io import IO_DTYPES
from tinypipe.engines.native.plan import ArenaPlan

NUMBERS_PER_LINE = {"i8": 24, "u8": 24, "i32": 10, "u32": 8, "Rs": 2}


def _array(a: ConstArray) -> str:
    if a.rust_type == "Rs":
        items = [f"Rs {{ multiplier: {m}, add: {rescale_word(d, r)} }}" for m, d, r in a.values]
    elif a.rust_type == "u32":
        items = [f"0x{v:08x}" for v in a.values]
    else:
        items = [str(v) for v in a.values]
    per = NUMBERS_PER_LINE[a.rust_type]
    lines = [", ".join(items[i:i + per]) + "," for i in range(0, len(items), per)]
    body = "\n".join("    " + line for line in lines)
    return f"static {a.name}: [{a.rust_type}; {len(a.values)}] = [\n{body}\n];\n"


def _f32(value: float) -> str:
    """The shortest literal that reads back as the same f32 (TFLite stores scales as float32): no digits
    beyond what an f32 holds, which clippy would flag."""
    import numpy as np

    return np.format_float_positional(np.float32(value), unique=True, trim="0")


def _value(v) -> str:
    """A parameter as Rust: ints, bools, lists (arrays), or a string already in Rust (a nested struct)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _params(step, full_range: bool = False) -> str:
    params = dict(step.params, act_min=-128, act_max=127) if full_range else step.params
    fields = "\n".join(f"    {k}: {_value(v)}," for k, v in params.items())
    literal = step.params_type.split("<")[0]  # `Concatenation<3>`: the literal infers the length
    return f"const P{step.index}: k::{step.params_type} = k::{literal} {{\n{fields}\n}};\n"


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


# the items the firmware's main.rs does not use, which rustc would report as dead code
UNUSED_API = "part of the generated model's API; the firmware does not call it"


def _checked(step: Step, fits: str, pattern: str, split: str) -> str:
    """A compile-time assertion of a step's arena ranges, then the run-time split bound to `pattern`."""
    what = f"op {step.index} {step.op}"
    return (f"    const _: () = assert!(k::{fits}, \"{what}: its arena ranges overlap or leave the arena\");\n"
            f"    let Some({pattern}) = {split} else {{ broken_plan({step.index}) }};\n")


def _multi_input_call(step: Step, plan: ArenaPlan, t) -> str:
    """A kernel reading several operands: arena tensors through `split_inputs`, constants from flash, in the
    operator's input order."""
    live = [step.input, *step.more_inputs]
    ranges = ", ".join(f"({plan.offset(i)}, {t[i].nbytes})" for i in live)
    names = [f"x{j}" for j in range(len(live))]
    dst, n_out = plan.offset(step.output), t[step.output].nbytes
    operands, it = [], iter(names)
    for pos in range(len(live) + len(step.const_inputs)):
        operands.append(f"&{step.const_inputs[pos].name}[..]" if pos in step.const_inputs else next(it))
    reads = ", ".join(f"arena[{plan.offset(i)}..{plan.offset(i) + t[i].nbytes}]" for i in live)
    if step.inputs_as_array:
        operands = [f"[{', '.join(operands)}]"]
    args = "".join(f"{o}, " for o in operands) + "".join(f"&{a.name}, " for a in step.arrays)
    return (f"    //   {reads} -> arena[{dst}..{dst + n_out}]\n"
            + _checked(step, f"inputs_fit(ARENA_BYTES, [{ranges}], {dst}, {n_out})", f"([{', '.join(names)}], y)",
                       f"k::split_inputs(arena, [{ranges}], {dst}, {n_out})")
            + f"    k::{step.kernel}{step.generics}(&P{step.index}, {args}y);\n"
            f"    hook({step.index}, y);\n")


def _in_place_call(step: Step, plan: ArenaPlan, t, tensor: int) -> str:
    """A kernel writing its output over input `tensor` (plan.py decides when that is legal)."""
    at, n = plan.offset(tensor), t[tensor].nbytes  # the output has as many bytes
    head = f"    //   arena[{at}..{at + n}] -> the same bytes, in place\n"
    own = _checked(step, f"range_fits(ARENA_BYTES, {at}, {n})", "y", f"arena.get_mut({at}..{at + n})")
    if not step.operands:  # unary: the kernel reads and writes `y`
        args = "".join(f"&{a.name}, " for a in step.arrays)
        return (head + own + f"    k::{step.kernel}_in_place(&P{step.index}, {args}y);\n"
                f"    hook({step.index}, y);\n")
    pos = step.operands.index(tensor)
    generics = "::<true>" if pos == 1 else "::<false>"
    other_pos = 1 - pos
    call = f"k::{step.kernel}_in_place{generics}(&P{step.index}, "
    tables = "".join(f"&{a.name}, " for a in step.arrays)
    if other_pos in step.const_inputs:
        return (head + own + f"    {call}&{step.const_inputs[other_pos].name}[..], {tables}y);\n"
                f"    hook({step.index}, y);\n")
    other = step.operands[other_pos]
    o_at, o_n = plan.offset(other), t[other].nbytes
    return (head + _checked(step, f"inputs_fit(ARENA_BYTES, [({o_at}, {o_n})], {at}, {n})", "(y, [x])",
                            f"k::split_in_place(arena, {at}, {n}, [({o_at}, {o_n})])")
            + f"    {call}x, {tables}y);\n    hook({step.index}, y);\n")


def _rows_call(step: Step, plan: ArenaPlan, t, stage_bytes: int) -> str:
    """A convolution writing its output row by row over its own input (plan.py chose it, overlap.py says how)."""
    src, dst = plan.offset(step.input), plan.offset(step.output)
    n_in, n_out = t[step.input].nbytes, t[step.output].nbytes
    args = "".join(f"&{a.name}, " for a in step.arrays)
    work = "&mut scratch" + ((", &mut stage" if stage_bytes else ", &mut []") if step.takes_stage else "")
    what = f"op {step.index} {step.op}"
    return (f"    //   arena[{src}..{src + n_in}] -> arena[{dst}..{dst + n_out}], row by row over its input, "
            f"{step.macs} MACs\n"
            f"    const _: () = assert!(k::rows_fit(ARENA_BYTES, {src}, {dst}, &P{step.index}.rows()), "
            f"\"{what}: a row would overwrite input still to be read, or leave the arena\");\n"
            f"    let Some(y) = k::{step.kernel}_rows{step.generics}(&P{step.index}, &mut arena[..], {src}, {dst}, "
            f"{args}{work}) else {{ broken_plan({step.index}) }};\n"
            f"    hook({step.index}, y);\n")


def _patch_call(patch, plan: ArenaPlan, t, stage_bytes: int) -> str:
    """A prefix of convolutions run band by band (patch.py): band buffers in the arena, a table of the rows each
    layer computes per band, one kernel call per layer and band. The input and output may overlap (plan.py):
    each is borrowed only for the call that needs it."""
    first, last = patch.steps[0], patch.steps[-1]
    x = (plan.offset(patch.input), t[patch.input].nbytes)
    y = (plan.offset(patch.output), t[patch.output].nbytes)
    tmp = (plan.offset(patch.temp), patch.temp_bytes)
    name = f"BANDS{last.index}"
    rows = ",\n".join("        [" + ", ".join(f"({a}, {b})" for a, b in band) + "]" for band in patch.bands)
    what = f"op {last.index} {last.op}"
    text = [f"    //   ops {first.index}..{last.index} in {len(patch.bands)} bands of op {last.index}'s output rows "
            f"(patch-based, {patch.extra_macs} MACs recomputed): arena[{x[0]}..{x[0] + x[1]}] -> "
            f"arena[{y[0]}..{y[0] + y[1]}], band buffers arena[{tmp[0]}..{tmp[0] + tmp[1]}]\n",
            f"    const {name}: [[(usize, usize); {len(patch.steps)}]; {len(patch.bands)}] = [\n{rows},\n    ];\n",
            f"    const _: () = assert!(k::patch_fits(ARENA_BYTES, &P{first.index}.rows(), &P{last.index}.rows(), "
            f"{x[0]}, {y[0]}, {tmp}, &{name}), \"{what}: its bands overwrite input still to be read, or leave "
            "the arena\");\n",
            f"    let Some((temp, mut around)) = k::split_patch(arena, {tmp}) else {{ broken_plan({last.index}) }};\n"]
    buffers = ["x"]
    for n, size in enumerate(patch.temp_sizes):
        rest = "temp" if n + 1 < len(patch.temp_sizes) else "_"
        text.append(f"    let Some((t{n}, {rest})) = temp.split_at_mut_checked({size}) else "
                    f"{{ broken_plan({last.index}) }};\n")
        buffers.append(f"t{n}")
    buffers.append("y")
    text.append(f"    for rows in &{name} {{\n")
    for n, step in enumerate(patch.steps):
        if n == 0:
            text.append(f"        let Some(x) = around.get({x[0]}, {x[1]}) else {{ broken_plan({last.index}) }};\n")
        if n + 1 == len(patch.steps):
            text.append(f"        let Some(y) = around.get_mut({y[0]}, {y[1]}) else {{ broken_plan({last.index}) }};\n")
        src, dst = buffers[n], buffers[n + 1]
        in_first = "0" if n == 0 else f"rows[{n - 1}].0"
        out_first = "0" if n + 1 == len(patch.steps) else f"rows[{n}].0"
        args = "".join(f"&{a.name}, " for a in step.arrays)
        work = "&mut scratch" + ((", &mut stage" if stage_bytes else ", &mut []") if step.takes_stage else "")
        text.append(f"        k::{step.kernel}_band(&P{step.index}, {src}, {in_first}, {dst}, {out_first}, rows[{n}], "
                    f"{args}{work});\n")
    text.append(f"    }}\n    let Some(y) = around.get({y[0]}, {y[1]}) else {{ broken_plan({last.index}) }};\n"
                f"    hook({last.index}, y);\n")
    return "".join(text)


# A conv or depthwise layer whose activation range is narrower than int8's runs its kernel with the full range,
# then `k::clamp_s8` over its output (clamp.rs says why the bits are the same), where the kernel's fast path has
# no narrower range of its own: conv2d_s8 (int8 filters: the Armv7-M, Armv6-M and portable paths, and the modes
# that do not widen) and a depthwise layer clamped at both ends. The DSP path's widened convolutions
# (dsp::conv_1x1_stream, dot_2rows_2px_stream) and its depthwise row loop for a range open at one end clamp
# in their own loops.
CLAMPED_KERNELS = frozenset({"conv2d_s8", "depthwise_conv2d_s8"})


def _clamp_pass(step: Step, lo: int, hi: int) -> bool:
    if step.kernel == "depthwise_conv2d_s8":
        return lo > -128 and hi < 127
    return True


def clamped_steps(program: Program, schedule: list | None = None) -> dict[int, tuple[int, int]]:
    """op index -> (act_min, act_max) of the steps run with the full int8 range and clamped after: the conv or
    depthwise layers of CLAMPED_KERNELS whose activation range is narrower and whose channels all take the short
    requantization path (the general path has no fast loop to gain), but those inside a patch (ram mode), whose
    band outputs feed the next layer before any pass over a whole tensor could run."""
    patched = {s.index for p in (schedule or []) if p.kernel == "patch" for s in p.steps}
    out = {}
    for s in program.steps:
        if s.kernel in CLAMPED_KERNELS and s.general_channels == 0 and s.index not in patched:
            lo, hi = s.params["act_min"], s.params["act_max"]
            if (lo, hi) != (-128, 127) and _clamp_pass(s, lo, hi):
                out[s.index] = (lo, hi)
    return out


def _with_clamp(text: str, step: Step, bounds: tuple[int, int], plan: ArenaPlan, t, overlapped: bool) -> str:
    """A step's call followed by the clamp of its output, before the hook sees it."""
    hook = f"    hook({step.index}, y);\n"
    clamp = f"    k::clamp_s8(y, {bounds[0]}, {bounds[1]});\n"
    if overlapped:  # the rows kernel hands back its output shared: borrow it again to clamp it
        dst, n = plan.offset(step.output), t[step.output].nbytes
        text = text.replace("    let Some(y) = k::", "    let Some(_) = k::", 1)
        clamp = (f"    let Some(y) = arena.get_mut({dst}..{dst + n}) else {{ broken_plan({step.index}) }};\n" + clamp)
    assert text.endswith(hook), text
    return text[:-len(hook)] + clamp + hook


def scratch_sizes(program: Program) -> tuple[int, int]:
    """(u32 words, staging bytes) of kernel working memory `invoke` keeps on its stack: the most any step needs."""
    return (max((s.scratch_words for s in program.steps), default=0),
            max((s.stage_bytes for s in program.steps), default=0))


def channel_buffer(program: Program) -> int:
    """Channels of the stack buffers packed layers unpack into (channels.py): the most any step has."""
    return max((s.packed.count for s in program.steps if s.packed), default=0)


# bytes of the stack buffers per channel: an i32 bias and an eight-byte `Rescale`
CHANNEL_BYTES = 12


def _args(step: Step) -> str:
    """The constant arrays a step's kernel takes; a packed step's (`CW{n}`, `CA{n}`) as the unpacked `b2, rs`."""
    if step.packed is None:
        return "".join(f"&{a.name}, " for a in step.arrays)
    words, adds = f"CW{step.index}", f"CA{step.index}"
    return "".join("b2, rs, " if a.name == words else "" if a.name == adds else f"&{a.name}, " for a in step.arrays)


def _unpack(step: Step) -> str:
    if step.packed is None:
        return ""
    n = step.index
    return (f"    let (b2, rs) = k::unpack_channels(&PC{n}, &CW{n}, &CA{n}, &mut channel_bias, "
            "&mut channel_rescale);\n")


def emit_model_rs(program: Program, plan: ArenaPlan, header: list[str], io: dict, schedule: list | None = None) -> str:
    """`schedule`: the steps `invoke` runs in order (default: the program's; a patch stands for its prefix)."""
    t = program.tensors
    scratch_words, stage_bytes = scratch_sizes(program)
    channels = channel_buffer(program)
    in_t, out_t = t[program.input], t[program.output]
    in_off, out_off = plan.offset(program.input), plan.offset(program.output)
    out = []
    out.append("//! Generated by tinypipe's native engine. Do not edit: change the model or tinypipe instead.\n//!\n")
    out.extend(f"//! {line}\n" for line in header)
    in_type, out_type = IO_DTYPES[in_t.dtype], IO_DTYPES[out_t.dtype]
    out.append(f"//!\n//! `invoke` runs the model on one {in_t.dtype} input; all activations live in one static "
               "arena.\n")
    out.append("\nuse tinyml_kernels as k;\n")
    if channels or any(a.rust_type == "Rs" for s in program.steps for a in [*s.const_inputs.values(), *s.arrays]):
        out.append("use tinyml_kernels::Rescale as Rs;\n")
    out.append("\n")
    out.append(f"/// The element type of the model's input tensor ({in_t.dtype}).\npub type Input = {in_type};\n")
    out.append(f"/// The element type of the model's output tensor ({out_t.dtype}).\npub type Output = {out_type};\n")
    out.append(f"/// Input values the model reads: shape {list(in_t.shape)}\n")
    out.append(f"pub const INPUT_LEN: usize = {in_t.size};\n")
    out.append(f"/// Output values the model writes: shape {list(out_t.shape)}\n")
    out.append(f"pub const OUTPUT_LEN: usize = {out_t.size};\n")
    for name, io_t, info in (("INPUT", in_t, io["input"]), ("OUTPUT", out_t, io["output"])):
        if io_t.dtype == "int8":
            unused = "" if name == "INPUT" else f"#[allow(dead_code, reason = \"{UNUSED_API}\")]\n"
            out.append(f"/// The {name.lower()} tensor's quantization: real = scale * (q - zero point).\n")
            out.append(f"{unused}pub const {name}_SCALE: f32 = {_f32(info['scale'])};\n")
            out.append(f"{unused}pub const {name}_ZERO_POINT: i32 = {info['zero_point']};\n")
    out.append("\n/// A real-valued sample (a sensor reading, in the units the model was trained on) as an input "
               "element")
    if in_t.dtype == "int8":
        out.append(",\n/// quantized as TFLite's QUANTIZE does.\n#[inline]\npub fn input_from_real(x: f32) -> Input {\n"
                   "    k::quantize_f32(x, INPUT_SCALE, INPUT_ZERO_POINT)\n}\n\n")
    else:
        out.append(":\n/// the model takes float32 and quantizes it itself.\n#[inline]\n"
                   "pub fn input_from_real(x: f32) -> Input {\n    x\n}\n\n")
    out.append(f"/// Activation memory, planned at code-generation time (lower bound {plan.lower_bound} bytes).\n")
    out.append(f"pub const ARENA_BYTES: usize = {plan.size};\n")
    out.append("/// Kernel working memory (im2col patches, staging), on `invoke`'s stack: not part of the arena.\n")
    out.append(f"#[allow(dead_code, reason = \"{UNUSED_API}\")]\n")
    out.append(f"pub const SCRATCH_BYTES: usize = {4 * scratch_words + stage_bytes + CHANNEL_BYTES * channels};\n")
    if scratch_words:
        out.append(f"const SCRATCH_WORDS: usize = {scratch_words};\n")
    if stage_bytes:
        out.append(f"const STAGE_BYTES: usize = {stage_bytes};\n")
    out.append(f"const INPUT_AT: usize = {in_off};\nconst INPUT_BYTES: usize = {in_t.nbytes};\n")
    out.append(f"const OUTPUT_AT: usize = {out_off};\nconst OUTPUT_BYTES: usize = {out_t.nbytes};\n\n")
    out.append("static mut ARENA: [i8; ARENA_BYTES] = [0; ARENA_BYTES];\n\n")
    out.append(
        "/// Run the model: `input` holds INPUT_LEN values, `output` receives OUTPUT_LEN.\n"
        "/// Shorter slices are used as far as they go; this never panics.\n"
        "///\n"
        "/// Uses the model's static arena: call it from one thread of execution at a time (not from an\n"
        "/// interrupt that can preempt another call).\n"
        "pub fn invoke(input: &[Input], output: &mut [Output]) {\n"
        "    invoke_traced(input, output, &mut |_, _| {});\n"
        "}\n\n")
    out.append("/// `invoke` calling `hook(op_index, op_output)` after each operator that computes (see\n"
               "/// `invoke_with_hook`): for per-layer timing. Not re-entrant either.\n"
               "pub fn invoke_traced<F: FnMut(usize, &[i8])>(input: &[Input], output: &mut [Output], hook: &mut F) {\n"
               "    // SAFETY: ARENA is touched only here, and `invoke`/`invoke_traced` are documented as not\n"
               "    // re-entrant, so this is the only live reference to it.\n"
               "    let arena = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };\n"
               "    invoke_with_hook(arena, input, output, hook);\n"
               "}\n\n")
    out.append("/// Run the model once reporting each operator that computes: `report(op_index, op, ticks)`, ticks of\n"
               "/// `clock` from the previous operator's end (the first from the call); `report`'s own time is not\n"
               "/// counted. For `target.profile_layers`.\n"
               "#[allow(dead_code, reason = \"the firmware calls it with its `layers` feature only\")]\n"
               "pub fn profile<F: FnMut(usize, &'static str, u64)>(\n"
               "    input: &[Input],\n    output: &mut [Output],\n    clock: fn() -> u64,\n    report: &mut F,\n"
               ") {\n"
               "    let mut last = clock();\n"
               "    invoke_traced(input, output, &mut |op, _| {\n"
               "        report(op, op_name(op), clock() - last);\n"
               "        last = clock();\n"
               "    });\n}\n\n")
    names = "".join(f"        {s.index} => \"{s.op}\",\n" for s in program.steps if s.kernel)
    out.append("/// The TFLite operator at `index` (those `invoke_with_hook` reports).\n"
               "#[allow(dead_code, reason = \"the firmware calls it through `profile` only\")]\n"
               f"pub fn op_name(index: usize) -> &'static str {{\n    match index {{\n{names}"
               "        _ => \"?\",\n    }\n}\n\n")
    out.append("/// One-time set-up before the first `invoke`: none, everything was planned at code-generation time.\n"
               "pub fn init() -> Result<(), &'static str> {\n    Ok(())\n}\n\n")
    out.append("/// `invoke` with a caller-provided arena.\n")
    out.append(f"#[allow(dead_code, reason = \"{UNUSED_API}\")]\n")
    out.append("pub fn invoke_with_arena(arena: &mut [i8; ARENA_BYTES], input: &[Input], output: &mut [Output]) {\n"
               "    invoke_with_hook(arena, input, output, &mut |_, _| {});\n}\n\n")
    out.append("/// `invoke_with_arena` calling `hook(op_index, op_output)` after each operator that computes (not\n"
               "/// after the reshapes, which move no bytes): for per-layer timing or tracing. A no-op hook costs\n"
               "/// nothing.\n"
               "/// `op_output` is the operator's output tensor as arena bytes (a float32 tensor: little-endian).\n")
    out.append("pub fn invoke_with_hook<F: FnMut(usize, &[i8])>(\n"
               "    arena: &mut [i8; ARENA_BYTES],\n    input: &[Input],\n    output: &mut [Output],\n"
               "    hook: &mut F,\n) {\n")
    if scratch_words:
        out.append("    let mut scratch = [0u32; SCRATCH_WORDS];\n")
    if stage_bytes:
        out.append("    let mut stage = [0i8; STAGE_BYTES];\n")
    if channels:  # packed layers' biases and rescales, unpacked one layer at a time
        out.append(f"    let mut channel_bias = [0i32; {channels}];\n"
                   f"    let mut channel_rescale = [Rs {{ multiplier: 0, add: 0 }}; {channels}];\n")
    out.append("    const _: () = assert!(k::range_fits(ARENA_BYTES, INPUT_AT, INPUT_BYTES), \"the input leaves the arena\");\n"
               "    let Some(dst) = arena.get_mut(INPUT_AT..INPUT_AT + INPUT_BYTES) else { broken_plan(usize::MAX) };\n"
               "    k::store(dst, input);\n")
    clamped = clamped_steps(program, schedule)
    for step in schedule or program.steps:
        if step.kernel == "patch":
            inner = ", ".join(f"op {s.index} {s.op}" for s in step.steps)
            out.append(f"    // {inner}: patch-based, band by band\n")
            out.append(_patch_call(step, plan, t, stage_bytes))
            continue
        src, dst = plan.offset(step.input), plan.offset(step.output)
        n_in, n_out = t[step.input].nbytes, t[step.output].nbytes
        out.append(f"    // op {step.index} {step.op} {_shape(step.in_shape)} -> {_shape(step.out_shape)}"
                   f"{', ' + step.note if step.note else ''}\n")
        if not step.kernel:
            continue
        if step.index in plan.overlapped:
            text = _rows_call(step, plan, t, stage_bytes)
            out.append(_with_clamp(text, step, clamped[step.index], plan, t, True) if step.index in clamped else text)
            continue
        if step.index in plan.in_place:
            text = _in_place_call(step, plan, t, plan.in_place[step.index])
            out.append(_with_clamp(text, step, clamped[step.index], plan, t, False) if step.index in clamped else text)
            continue
        if step.more_inputs or step.const_inputs:
            out.append(_multi_input_call(step, plan, t))
            continue
        out.append(f"    //   arena[{src}..{src + n_in}] -> arena[{dst}..{dst + n_out}]"
                   f"{f', {step.macs} MACs' if step.macs else ''}\n")
        args = _args(step)
        work = ""
        if step.scratch_words:
            work = ", &mut scratch"
            if step.takes_stage:
                work += ", &mut stage" if stage_bytes else ", &mut []"
        text = (_checked(step, f"io_fits(ARENA_BYTES, {src}, {n_in}, {dst}, {n_out})", "(x, y)",
                         f"k::split_io(arena, {src}, {n_in}, {dst}, {n_out})")
                + _unpack(step) + f"    k::{step.kernel}{step.generics}(&P{step.index}, x, {args}y{work});\n"
                f"    hook({step.index}, y);\n")
        out.append(_with_clamp(text, step, clamped[step.index], plan, t, False) if step.index in clamped else text)
    out.append("    const _: () = assert!(k::range_fits(ARENA_BYTES, OUTPUT_AT, OUTPUT_BYTES), \"the output leaves the arena\");\n"
               "    let Some(src) = arena.get(OUTPUT_AT..OUTPUT_AT + OUTPUT_BYTES) else { broken_plan(usize::MAX) };\n"
               "    k::load(output, src);\n}\n\n")
    out.append("/// Unreachable: the `const` assertions in `invoke_with_hook` prove every arena range when this file\n"
               "/// compiles. Should a range ever be refused all the same, the run stops naming the operator\n"
               "/// (`usize::MAX`: the model's input or output) rather than skipping it.\n"
               "#[cold]\n#[inline(never)]\n"
               "fn broken_plan(op: usize) -> ! {\n"
               "    panic!(\"model.rs: the arena plan is broken at operator {}\", op)\n}\n")
    for step in program.steps:
        if not step.kernel:
            continue
        out.append(f"\n// --- op {step.index} {step.op} ---\n")
        out.append(_params(step, full_range=step.index in clamped))
        if step.packed is not None:
            fields = "".join(f"    {k}: {v},\n" for k, v in step.packed.params().items())
            out.append(f"const PC{step.index}: k::PackedChannels = k::PackedChannels {{\n{fields}}};\n")
        if step.index in clamped:
            lo, hi = clamped[step.index]
            out.append(f"// op {step.index} runs with the full int8 range, then k::clamp_s8 to [{lo}, {hi}]\n")
        for a in [*step.const_inputs.values(), *step.arrays]:
            out.append(_array(a))
    return "".join(out)
