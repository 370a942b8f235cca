"""One static arena for all activations, planned from tensor lifetimes.

A buffer is the bytes of one tensor together with its aliases (RESHAPE and friends share their input's
bytes). It lives from the step that writes it (the model input: before the first step) to the last step
that reads it (the model output: after the last step). Buffers whose lifetimes overlap may not share bytes.
Placement is greedy, largest first, each at the lowest offset that clears every placed, overlapping buffer
(the strategy of TFLM's GreedyMemoryPlanner). The lower bound is the most bytes live at any one step: no
placement can do better.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    alias_of: dict[int, int]
    size: int
    lower_bound: int

    def offset(self, tensor: int) -> int:
        return self.buffers[self.alias_of.get(tensor, tensor)].offset


def plan_arena(steps, sizes: dict[int, int], model_input: int, model_output: int,
               alias_of: dict[int, int]) -> ArenaPlan:
    """`steps`: objects with `.input`, `.more_inputs` (other tensors read; ints), `.output`, `.kernel` ("" for
    aliases); `sizes`: tensor -> bytes."""
    owner = lambda t: alias_of.get(t, t)  # noqa: E731
    buffers: dict[int, Buffer] = {}

    def touch(tensor: int, at: int) -> None:
        b = buffers.get(owner(tensor))
        if b is None:
            buffers[owner(tensor)] = Buffer(owner(tensor), sizes[owner(tensor)], at, at)
        else:
            b.first, b.last = min(b.first, at), max(b.last, at)

    touch(model_input, -1)
    for i, step in enumerate(steps):
        touch(step.input, i)
        for tensor in step.more_inputs:
            touch(tensor, i)
        touch(step.output, i)
    touch(model_output, len(steps))

    placed: list[Buffer] = []
    for b in sorted(buffers.values(), key=lambda b: (-b.size, b.first, b.tensor)):
        offset = 0
        for other in sorted((p for p in placed if p.overlaps(b)), key=lambda p: p.offset):
            if offset + b.size <= other.offset:
                break
            offset = max(offset, other.offset + other.size)
        b.offset = offset
        placed.append(b)
    size = max((b.offset + b.size for b in placed), default=0)
    lower_bound = max((sum(b.size for b in placed if b.first <= t <= b.last)
                       for t in range(-1, len(steps) + 1)), default=0)
    return ArenaPlan(buffers=buffers, alias_of=dict(alias_of), size=size, lower_bound=lower_bound)
