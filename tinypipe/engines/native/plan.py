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

Overlapped (`overlap=True`, what `native.optimize: ram` asks for): a CONV_2D or DEPTHWISE_CONV_2D whose input
dies at it may write its output row by row over that input, the output starting `shift` bytes before it
(overlap.py says how far; kernels' rows.rs runs it; a patch of several, patch.py, band by band), so the two take about the larger one's bytes instead of
their sum. Buffers tied that way form a group placed as one rigid piece. Which operators overlap is chosen
greedily, largest input + output first: one is kept when the arena does not grow, then dropped again when the
arena does not need it (each costs a kernel call per output row). The lower bound then counts a group's live
members by the bytes they cover together: the bound of that schedule, below the layer-by-layer one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tinypipe.engines.native.overlap import overlap_of

ORDERS = {  # strategy name -> sort key of a buffer
    "largest_first": lambda b: (-b.size, b.first, b.tensor),
    "first_written": lambda b: (b.first, -b.size, b.tensor),
    "longest_lived": lambda b: (b.first - b.last, -b.size, b.tensor),
}


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
    overlapped: dict[int, int] = field(default_factory=dict)  # operator index -> its shift (overlap.py)
    layer_by_layer: int = 0  # the arena of the same plan without overlapped operators

    def offset(self, tensor: int) -> int:
        return self.buffers[self.alias_of.get(tensor, tensor)].offset


@dataclass
class _Group:
    """Buffers at fixed distances from each other (tied by overlapped operators), placed as one piece."""
    members: list[tuple[Buffer, int]]  # (buffer, its offset from the group's start)

    @property
    def summary(self) -> Buffer:
        """The group as one buffer for the placement orders: its extent and lifetime."""
        if len(self.members) == 1:
            return self.members[0][0]
        return Buffer(min(b.tensor for b, _ in self.members), max(r + b.size for b, r in self.members),
                      min(b.first for b, _ in self.members), max(b.last for b, _ in self.members))


def _clear(placed: list[Buffer], b: Buffer, at: int) -> bool:
    return all(p.offset + p.size <= at or at + b.size <= p.offset for p in placed if p.overlaps(b))


def _place_group(placed: list[Buffer], group: _Group) -> int:
    """The lowest offset for a rigid group: 0 or where a member would sit just past a placed buffer."""
    candidates = sorted({0} | {p.offset + p.size - r for b, r in group.members for p in placed
                               if p.overlaps(b) and p.offset + p.size >= r})
    return next(at for at in candidates if all(_clear(placed, b, at + r) for b, r in group.members))


def _neighbours_first(groups: list[_Group]) -> list[_Group]:
    """The largest group, then always the one living beside the most bytes already placed (ties: the larger):
    a chain of overlapped convolutions is laid down step by step, each buffer next to those it meets."""
    left = sorted(groups, key=lambda g: ORDERS["largest_first"](g.summary))
    beside = [0] * len(left)
    done: list[_Group] = []
    while left:
        pick = max(range(len(left)), key=lambda k: (beside[k], left[k].summary.size, -k))
        g = left.pop(pick)
        beside.pop(pick)
        done.append(g)
        for k, other in enumerate(left):
            beside[k] += sum(b.size for b, _ in g.members for o, _ in other.members if b.overlaps(o))
    return done


# with overlapped convolutions (groups) also this order, whose choice depends on what is already placed
GROUP_ORDERS = {**ORDERS, "neighbours_first": _neighbours_first}


def _place(groups: list[_Group], order) -> dict[int, int]:
    """Greedy placement in `order` (a sort key of a buffer, or a function ordering the groups): owner tensor ->
    offset."""
    placed: list[Buffer] = []
    offsets: dict[int, int] = {}
    ordered = _neighbours_first(groups) if order is _neighbours_first else sorted(groups, key=lambda g: order(g.summary))
    for g in ordered:
        if len(g.members) == 1:
            b = g.members[0][0]
            offset = 0
            for other in sorted((p for p in placed if p.overlaps(b)), key=lambda p: p.offset):
                if offset + b.size <= other.offset:
                    break
                offset = max(offset, other.offset + other.size)
            base = offset
        else:
            base = _place_group(placed, g)
        for b, r in g.members:
            offsets[b.tensor] = base + r
            placed.append(Buffer(b.tensor, b.size, b.first, b.last, base + r))
    return offsets


def _groups(buffers: dict[int, Buffer], ties: list[tuple[int, int, int]]) -> list[_Group] | None:
    """Buffers grouped by `ties` (input owner, output owner, shift; in step order), or None when a tie would
    put two members that live at the same time on the same bytes (other than the tied pair itself)."""
    root = {o: o for o in buffers}
    rel = {o: 0 for o in buffers}
    members: dict[int, list[int]] = {o: [o] for o in buffers}
    for src, out, shift in ties:
        g = root[src]
        at = rel[src] - shift
        b = buffers[out]
        for m in members[g]:
            other = buffers[m]
            if m != src and other.overlaps(b) and not (rel[m] + other.size <= at or at + b.size <= rel[m]):
                return None
        for m in members.pop(out):  # a fresh output: a group of its own so far
            root[m], rel[m] = g, at + rel[m]
            members[g].append(m)
    groups = []
    for g, ms in members.items():
        low = min(rel[m] for m in ms)
        groups.append(_Group([(buffers[m], rel[m] - low) for m in ms]))
    return groups


def _live_bytes(groups: list[_Group], at: int) -> int:
    """Bytes live at step `at`: a group's live members count by the bytes they cover together."""
    total = 0
    for g in groups:
        spans = sorted((r, r + b.size) for b, r in g.members if b.first <= at <= b.last)
        end = None
        for lo, hi in spans:
            if end is None or lo >= end:
                total += hi - lo
                end = hi
            elif hi > end:
                total += hi - end
                end = hi
    return total


def _layout(buffers: dict[int, Buffer], ties: list[tuple[int, int, int]]):
    """(strategies, best strategy, offsets, groups) for these buffers and ties; None if the ties clash."""
    groups = _groups(buffers, ties)
    if groups is None:
        return None
    orders = GROUP_ORDERS if ties else ORDERS
    placements = {name: _place(groups, order) for name, order in orders.items()}
    strategies = {name: max((o + buffers[t].size for t, o in offsets.items()), default=0)
                  for name, offsets in placements.items()}
    best = min(strategies, key=lambda name: (strategies[name], list(orders).index(name)))
    return strategies, best, placements[best], groups


def plan_arena(steps, sizes: dict[int, int], model_input: int, model_output: int,
               alias_of: dict[int, int], in_place: bool = True, overlap: bool = False,
               bound_only: bool = False) -> ArenaPlan | int:
    """`steps`: objects with `.index`, `.input`, `.more_inputs` (other tensors read; ints), `.output`,
    `.in_place_inputs` (tensors the kernel may overwrite) and optionally `.temps`; `sizes`: tensor -> bytes. `overlap`: also let
    convolutions write over their input row by row where that lowers the arena (steps then need `.kernel`,
    `.params_type` and `.params`, see overlap.py). `bound_only` (with `overlap`): just the lower bound with every
    convolution that can overlap doing so, no placement: a cheap rank of schedules."""
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
        # `temps`: working buffers that live only during the step (a patch's band buffers, patch.py)
        for tensor in (step.input, *step.more_inputs, step.output, *getattr(step, "temps", ())):
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
    strategies, best, offsets, groups = _layout(buffers, []) if not bound_only else ({"": 0}, "", {}, [])
    layer_by_layer = strategies[best]
    chosen: dict[int, tuple[int, int, int]] = {}  # operator index -> (input owner, output owner, shift)
    if overlap:
        position = {s.index: i for i, s in enumerate(steps)}

        def ties(ops):
            return [ops[k] for k in sorted(ops, key=position.__getitem__)]

        candidates = {}
        for i, step in enumerate(steps):
            geometry = overlap_of(step)
            src, out = owner(step.input), owner(step.output)
            if geometry is None or src == out or last[src] != i or first[out] != i or step.more_inputs:
                continue
            in_bytes, out_bytes, shift = geometry
            if sizes[src] == in_bytes and sizes[out] == out_bytes and max(out_bytes, shift + in_bytes) < in_bytes + out_bytes:
                candidates[step.index] = (src, out, shift)
        if bound_only:
            tied: dict[int, tuple[int, int, int]] = {}
            for op in candidates:
                if _groups(buffers, ties({**tied, op: candidates[op]})) is not None:
                    tied[op] = candidates[op]
            return max(_live_bytes(_groups(buffers, ties(tied)), t) for t in range(-1, len(steps) + 1))
        current = (strategies, best, offsets, groups)
        for op in sorted(candidates, key=lambda k: -(sizes[candidates[k][0]] + sizes[candidates[k][1]])):
            trial = _layout(buffers, ties({**chosen, op: candidates[op]}))
            if trial is not None and trial[0][trial[1]] <= current[0][current[1]]:
                chosen[op], current = candidates[op], trial
        for op in list(chosen):  # each costs a kernel call per row: keep only those the arena needs
            rest = {k: v for k, v in chosen.items() if k != op}
            trial = _layout(buffers, ties(rest))
            if trial is not None and trial[0][trial[1]] <= current[0][current[1]]:
                chosen, current = rest, trial
        strategies, best, offsets, groups = current
    lower_bound = max((_live_bytes(groups, t) for t in range(-1, len(steps) + 1)), default=0)
    for tensor, offset in offsets.items():
        buffers[tensor].offset = offset
    size = strategies[best]
    every = {t: owner(t) for t in set(sizes) if owner(t) != t and owner(t) in buffers}
    plan = ArenaPlan(buffers=buffers, alias_of=every, size=size, lower_bound=lower_bound, in_place=merged,
                     strategies=strategies, strategy=best, layer_by_layer=layer_by_layer,
                     overlapped={op: shift for op, (_, _, shift) in chosen.items()})
    if merged and not overlap:  # (with overlaps the search costs more; in place rarely loses)
        apart = plan_arena(steps, sizes, model_input, model_output, alias_of, in_place=False, overlap=overlap)
        if apart.size < plan.size:
            return apart
    return plan
