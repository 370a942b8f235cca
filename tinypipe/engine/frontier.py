"""Which stages may start next: each stage counts the needs it still waits for, so settling one stage touches
only the stages that need it (a 1,000-stage run never rescans a waiting list), and of the ready stages the one
heading the longest chain starts first, so the critical path is never left waiting behind short side branches.
"""

from __future__ import annotations

import heapq

from tinypipe.engine.graph import Node

DONE = ("ran", "cached", "pulled")  # a stage settled so that the stages needing it can run
BROKEN = ("failed", "skipped")  # a stage settled so that the stages needing it cannot


class Frontier:
    def __init__(self, nodes: list[Node]):
        """`nodes` in topological order."""
        self._order = {node: i for i, node in enumerate(nodes)}
        self._unmet = {node: len(node.needs) for node in nodes}
        self._dependents: dict[Node, list[Node]] = {node: [] for node in nodes}
        for node in nodes:
            for need in node.needs:
                self._dependents[need].append(node)
        self._chain: dict[Node, int] = {}  # stages on the longest path from here to the end, this one included
        for node in reversed(nodes):
            self._chain[node] = 1 + max((self._chain[d] for d in self._dependents[node]), default=0)
        self.settled: dict[Node, str] = {}
        self._ready: list[tuple[int, int, Node]] = []
        for node in nodes:
            if not node.needs:
                self._push(node)

    def _push(self, node: Node) -> None:
        heapq.heappush(self._ready, (-self._chain[node], self._order[node], node))

    def peek(self) -> Node | None:
        """The ready stage to start next (all its needs ran or are cached), or None."""
        return self._ready[0][2] if self._ready else None

    def pop(self) -> Node:
        return heapq.heappop(self._ready)[2]

    def settle(self, node: Node, state: str) -> list[Node]:
        """Record how `node` ended (ran | cached | pulled | failed). Returns the stages that can now never run (every stage
        downstream of a failure, in topological order): they are settled as skipped."""
        self.settled[node] = state
        if state in DONE:
            for dependent in self._dependents[node]:
                self._unmet[dependent] -= 1
                if self._unmet[dependent] == 0 and dependent not in self.settled:
                    self._push(dependent)
            return []
        skipped: list[Node] = []
        stack = []
        for dependent in self._dependents[node]:
            if node.name in dependent.stage.helped_by:  # it only went faster with it: it runs all the same
                self._unmet[dependent] -= 1
                if self._unmet[dependent] == 0 and dependent not in self.settled:
                    self._push(dependent)
            else:
                stack.append(dependent)
        while stack:
            dependent = stack.pop()
            if dependent in self.settled:
                continue
            self.settled[dependent] = "skipped"
            skipped.append(dependent)
            stack.extend(self._dependents[dependent])
        return sorted(skipped, key=self._order.__getitem__)
