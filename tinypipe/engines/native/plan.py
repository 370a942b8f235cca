"""One static arena for all activations, planned from tensor lifetimes.

A buffer is the bytes of one tensor together with its aliases (RESHAPE and friends share their input's
bytes). It lives from the step that writes it (the model input: before the first step) to the last step
that reads it (the model output: after the last step). Buffers whose lifetimes overlap may not share bytes.

In place: a step whose kernel can write its output over an input (`Step.in_place_inputs`: unary tables,
SOFTMAX, ADD/SUB/MUL over an operand laid out like the output) does so when that input's bytes are read for
the last time by this step and are as many as the output's; the output then joins the input's buffer, and
the two never need room side by side. (A smaller output would keep the larger buffer alive for longer, so it
does not go in place.) The plan is made with and without in-place outputs and the smaller arena kept.

Placement is greedy: buffers in some order, each at the lowest offset that clears every placed, overlapping
buffer. Three orders are tried and the smallest arena kept — largest first (TFLM's GreedyMemoryPlanner),
first written first, longest lived first — and the sizes each gave are reported. The lower bound is the most
bytes live at any one step: no placement of these buffers can do better.

`PlanOptions` is how the code generator's `native.optimize` mode reaches the planner: `lowest_peak` (mode
`ram`) asks for the schedule with the lowest peak arena whatever it costs in instructions (schedules that
recompute, such as patch-based inference of the first stages, are allowed only then).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ORDERS = {  # strategy name -> sort key of a buffer
    "largest_first": lambda b: (-b.size, b.first, b.tensor),
    "first_written": lambda b: (b.first, -b.size, b.tensor),
    "longest_lived": lambda b: (b.first - b.last, -b.size, b.tensor),
}


@dataclass(frozen=True)
class PlanOptions:
    lowest_peak: bool = False  # mode `ram`: the lowest peak arena, even at the cost of extra instructions

    @classmethod
    def for_mode(cls, optimize: str) -> "PlanOptions":
        return cls(lowest_peak=optimize == "ram")


@dataclass
class Buffer:
    tensor: int  # the tensor that owns the bytes (aliases point here)
    size: int
    first: int  # step index that writes it (-1: the model input)
    last: int  # last step index that reads it (len(steps): the model output)
    offset: int = -1

    def overlaps(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class ArenaPlan:
    buffers: dict[int, Buffer]  # owner tensor -> buffer
    alias_of: dict[int, int]  # tensor -> the owner of its bytes (aliases and in-place outputs)
    size: int
    lower_bound: int
    in_place: dict[int, int] = field(default_factory=dict)  # operator index -> the input tensor it overwrites
    strategies: dict[str, int] = field(default_factory=dict)  # placement order -> arena bytes it gave
    strategy: str = ""

    def offset(self, tensor: int) -> int:
        return self.buffers[self.alias_of.get(tensor, tensor)].offset


def _place(buffers: list[Buffer], order) -> dict[int, int]:
    """Greedy placement in `order`: owner tensor -> offset."""
    placed: list[Buffer] = []
    for b in sorted(buffers, key=order):
        offset = 0
        for other in sorted((p for p in placed if p.overlaps(b)), key=lambda p: p.offset):
            if offset + b.size <= other.offset:
                break
            offset = max(offset, other.offset + other.size)
        b.offset = offset
        placed.append(b)
    return {b.tensor: b.offset for b in placed}


def plan_arena(steps, sizes: dict[int, int], model_input: int, model_output: int,
               alias_of: dict[int, int], in_place: bool = True, options: PlanOptions = PlanOptions()) -> ArenaPlan:
    """`steps`: objects with `.index`, `.input`, `.more_inputs` (other tensors read; ints), `.output` and
    `.in_place_inputs` (tensors the kernel may overwrite); `sizes`: tensor -> bytes. Every placement made here
    already keeps the smallest arena, so `options.lowest_peak` changes nothing yet: it selects the schedules
    that trade instructions for RAM as the planner gains them."""
    parent = dict(alias_of)

    def owner(t: int) -> int:
        while t in parent:
            t = parent[t]
        return t

    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def touch(tensor: int, at: int) -> None:
        o = owner(tensor)
        first[o] = min(first.get(o, at), at)
        last[o] = max(last.get(o, at), at)

    touch(model_input, -1)
    for i, step in enumerate(steps):
        for tensor in (step.input, *step.more_inputs, step.output):
            touch(tensor, i)
    touch(model_output, len(steps))

    merged: dict[int, int] = {}
    for i, step in enumerate(steps if in_place else ()):
        out = owner(step.output)
        reads = [owner(t) for t in (step.input, *step.more_inputs)]
        for tensor in step.in_place_inputs:
            src = owner(tensor)
            if last[src] == i and reads.count(src) == 1 and sizes[src] == sizes[out] and out != src \
                    and first[out] == i:
                parent[out] = src
                last[src] = max(last[src], last.pop(out))
                first.pop(out)
                merged[step.index] = tensor
                break

    buffers = {o: Buffer(o, sizes[o], first[o], last[o]) for o in first}
    placements = {name: _place(list(buffers.values()), order) for name, order in ORDERS.items()}
    strategies = {name: max((o + buffers[t].size for t, o in offsets.items()), default=0)
                  for name, offsets in placements.items()}
    best = min(strategies, key=lambda name: (strategies[name], list(ORDERS).index(name)))
    for tensor, offset in placements[best].items():
        buffers[tensor].offset = offset
    size = strategies[best]
    lower_bound = max((sum(b.size for b in buffers.values() if b.first <= t <= b.last)
                       for t in range(-1, len(steps) + 1)), default=0)
    every = {t: owner(t) for t in set(sizes) if owner(t) != t and owner(t) in buffers}
    plan = ArenaPlan(buffers=buffers, alias_of=every, size=size, lower_bound=lower_bound, in_place=merged,
                     strategies=strategies, strategy=best)
    if merged:
        apart = plan_arena(steps, sizes, model_input, model_output, alias_of, in_place=False, options=options)
        if apart.size < plan.size:
            return apart
    return plan
