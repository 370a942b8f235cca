"""The DAG: one node per distinct (stage, transitive config). Variants that agree upstream share nodes, so a
matrix trains once. Keys are computed lazily: a key needs its upstream output hashes, known only once the
upstream entry exists."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinypipe.config.variant import Variant
from tinypipe.core.hashing import sha256_json
from tinypipe.core.snapshot import snapshot
from tinypipe.engine.store import Store
from tinypipe.engines import pipeline_for
from tinypipe.stages import load
from tinypipe.stages.base import Stage


KEY_PREFIX = 12  # hex digits of a store key shown in a stage's label (as `status --why` shortens hashes)
PENDING_PREFIX = 8  # hex digits of a pending node's identity: distinct from a key's 12, and marked `pending-`


def stage_label(stage: str, key: str | None, ident: str) -> str:
    """`<stage>:<key prefix>`, or `<stage>:pending-<identity prefix>` while the key waits on an upstream output:
    the identity (stage, config, tools and the needs' identities) tells apart the cells of a matrix before any of
    their keys is known."""
    return f"{stage}:{key[:KEY_PREFIX]}" if key else f"{stage}:pending-{ident[:PENDING_PREFIX]}"


@dataclass(eq=False)
class Node:
    stage: Stage
    module: str  # the stage module that runs it (a dotted path)
    variant: Variant  # the first variant that uses this node (stages read their config from it)
    variants: list[str]
    needs: list["Node"]
    store: Store
    ident: str  # static identity: stage + config + tools + the needs' identities
    config: dict[str, Any]
    tools: dict[str, Any]
    _meta: dict[str, Any] | None = field(default=None, repr=False)
    _key: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.stage.name

    def label(self) -> str:
        """The one name users see for this node (plan, status, show): `<stage>:<store key prefix>`, the key the
        store entry and the lock use; `<stage>:pending-<identity prefix>` while the key waits on an upstream
        output."""
        return stage_label(self.name, self.key(), self.ident)

    def key_inputs(self) -> dict[str, Any] | None:
        """What the key is made of, or None while an upstream output is not in the store yet."""
        needs = {}
        for dep in self.needs:
            meta = dep.meta()
            if meta is None:
                return None
            needs[dep.name] = meta["output"]
        return {"stage": self.name, "version": self.stage.version, "config": self.config,
                "needs": needs, "tools": self.tools}

    def key(self) -> str | None:
        """The store key, once every upstream output is known (memoized then: those outputs do not change)."""
        if self._key is None:
            inputs = self.key_inputs()
            self._key = None if inputs is None else sha256_json(inputs)
        return self._key

    def meta(self) -> dict[str, Any] | None:
        """This node's store entry for its current key, if it exists (memoized once found)."""
        if self._meta is not None:
            return self._meta
        key = self.key()
        if key is not None:
            self._meta = self.store.lookup(key)
        return self._meta

    def set_meta(self, meta: dict[str, Any]) -> None:
        self._meta = meta

    def entry_dir(self) -> Path:
        meta = self.meta()
        assert meta is not None, f"{self.name} has no store entry yet"
        return self.store.path(meta["key"])


@dataclass
class Graph:
    nodes: list[Node]  # topological order
    by_variant: dict[str, dict[str, Node]]  # variant -> stage -> node
    variants: list[Variant]


def build_graph(variants: list[Variant], project_store: Store, shared_store: Store,
                until: str | None = None) -> Graph:
    """The DAG of `variants`; the machine is looked at once (`core.snapshot`): each source tree is hashed and
    each tool asked for its version once, however many cells read them."""
    with snapshot():
        return _build_graph(variants, project_store, shared_store, until)


def _build_graph(variants: list[Variant], project_store: Store, shared_store: Store, until: str | None) -> Graph:
    nodes: list[Node] = []
    by_ident: dict[str, Node] = {}
    by_variant: dict[str, dict[str, Node]] = {}
    for variant in variants:
        stages = pipeline_for(variant.engine)
        if until is not None:
            roles = [role for role, _ in stages]
            if until in roles:
                stages = stages[: roles.index(until) + 1]
        local: dict[str, Node] = {}
        for name, module in stages:
            stage: Stage = load(module).STAGE
            assert stage.name == name, f"module {module} fills role {name} but declares {stage.name}"
            if not stage.runs_for(variant):
                continue
            needs = [local[n] for n in stage.needs] + [local[n] for n in stage.uses if n in local]
            config = stage.config(variant)
            tools = stage.tools(variant)
            ident = sha256_json({"stage": name, "version": stage.version, "config": config, "tools": tools,
                                 "needs": [n.ident for n in needs]})
            node = by_ident.get(ident)
            if node is None:
                node = Node(stage=stage, module=module, variant=variant, variants=[], needs=needs,
                            store=shared_store if stage.shared else project_store,
                            ident=ident, config=config, tools=tools)
                by_ident[ident] = node
                nodes.append(node)
            node.variants.append(variant.name)
            local[name] = node
        by_variant[variant.name] = local
    return Graph(nodes=nodes, by_variant=by_variant, variants=variants)
