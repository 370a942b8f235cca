"""docs/config.md is the schema's reference: it must be current, and every key of the schema must be in it, with
a description and an example. The schema is walked here through its JSON schema, independently of the renderer."""

import difflib

import pytest

from tests.helpers import REPO
from tinypipe.config.boards import BOARDS
from tinypipe.config.reference import render_reference
from tinypipe.config.schema import Project

DOC = REPO / "docs" / "config.md"
STALE = "docs/config.md is stale: run `.venv/bin/python -m tinypipe.config.reference --write`"


def committed_doc() -> str:
    if not DOC.is_file():
        pytest.fail(STALE + " (the file is missing)", pytrace=False)
    return DOC.read_text()


def _resolve(node: dict, defs: dict) -> dict:
    while "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[1]]
    return node


def _not_null(node: dict, defs: dict) -> dict:
    """`X | None` is `anyOf: [X, null]` in the JSON schema: X. A union of several (`float | list[float] | None`)
    stays as it is: a leaf."""
    node = _resolve(node, defs)
    if "anyOf" in node:
        members = [m for m in node["anyOf"] if m.get("type") != "null"]
        if len(members) > 1:
            return node
        (node,) = members
    return _resolve(node, defs)


def schema_keys() -> list[dict]:
    """Every key of the schema: {path, tag (a tagged list item's `type: x`, else None), leaf, schema, target}."""
    schema = Project.model_json_schema()
    defs = schema.get("$defs", {})
    keys: list[dict] = []

    def walk(obj: dict, prefix: str, tag: str | None, skip: str | None) -> None:
        for name, prop in obj["properties"].items():
            if name == skip:
                continue
            path = f"{prefix}.{name}" if prefix else name
            target = _not_null(prop, defs)
            key = {"path": path, "tag": tag, "schema": prop, "target": target, "leaf": False}
            keys.append(key)
            if "properties" in target:
                walk(target, path, tag, None)
            elif target.get("type") == "array" and "properties" in _resolve(target["items"], defs):
                walk(_resolve(target["items"], defs), path + "[]", tag, None)
            elif target.get("type") == "array" and "oneOf" in target["items"]:
                discriminator = target["items"]["discriminator"]["propertyName"]
                keys.append({"path": f"{path}[].{discriminator}", "tag": None, "schema": {}, "target": {},
                             "leaf": True, "discriminator": True})
                for member in target["items"]["oneOf"]:
                    member = _resolve(member, defs)
                    value = member["properties"][discriminator]["const"]
                    walk(member, path + "[]", f"{discriminator}: {value}", discriminator)
            else:
                key["leaf"] = True

    walk(schema, "", None, None)
    return keys


def _member_section(doc: str, list_path: str, tag: str) -> str:
    """The doc's section for one kind of a tagged list item, up to the next heading of its level or above."""
    heading = f"`{list_path}` with `{tag}`"
    lines = doc.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("#") and heading in line]
    assert len(starts) == 1, f"docs/config.md has no single heading for {heading}"
    level = len(lines[starts[0]]) - len(lines[starts[0]].lstrip("#"))
    end = next((i for i in range(starts[0] + 1, len(lines))
                if lines[i].startswith("#") and len(lines[i]) - len(lines[i].lstrip("#")) <= level), len(lines))
    return "\n".join(lines[starts[0]:end])


def test_doc_is_current():
    fresh = render_reference()
    committed = committed_doc()
    if committed != fresh:
        diff = difflib.unified_diff(committed.splitlines(), fresh.splitlines(), "docs/config.md", "regenerated",
                                    lineterm="", n=1)
        pytest.fail(STALE + "\n" + "\n".join(list(diff)[:40]), pytrace=False)


def test_every_key_is_documented():
    doc = committed_doc()
    keys = schema_keys()
    assert len([k for k in keys if k["leaf"]]) > 30  # the walk found the schema
    missing = []
    for key in keys:
        if key["tag"] is None:
            if f"`{key['path']}`" not in doc:
                missing.append(key["path"])
        else:
            list_path = key["path"].rsplit(".", 1)[0]
            if f"`{key['path']}`" not in _member_section(doc, list_path, key["tag"]):
                missing.append(f"{key['path']} ({key['tag']})")
    assert not missing, f"{STALE}\nkeys missing from the doc: {', '.join(missing)}"


def test_every_key_has_a_description_and_leaves_an_example():
    """A new field without `Field(description=..., examples=[...])` fails here (a section may instead have a
    docstring on its model)."""
    undocumented = []
    for key in schema_keys():
        if key.get("discriminator"):
            continue  # documented by the renderer from the union's members
        described = key["schema"].get("description") or (not key["leaf"] and key["target"].get("description"))
        if not described:
            undocumented.append(f"{key['path']}: no description")
        if key["leaf"] and not key["schema"].get("examples"):
            undocumented.append(f"{key['path']}: no examples")
    assert not undocumented, "document these in tinypipe/config/schema.py:\n" + "\n".join(undocumented)


def test_boards_and_allowed_values_are_listed():
    doc = committed_doc()
    for name in BOARDS:
        assert f"`{name}`" in doc, f"board {name} is not in docs/config.md"
    for value in ("relu6", "float32", "cmsis_nn", "model_ops", "microphone", "probe"):
        assert f"`{value}`" in doc
