"""The project.yaml reference, docs/config.md, rendered from the schema.

Every key path gets its type, default, allowed values, description and an example, all read from
`tinypipe/config/schema.py` (field metadata and model docstrings) and the board registry, in schema order.
`extends:` is not a schema key (the loader resolves it before validation), so its entry is written here, from
what `loader.read_located` does.

`python -m tinypipe.config.reference` prints the page; `--write` replaces docs/config.md.
tests/test_config_docs.py fails when the committed page is stale.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from tinypipe.config.boards import BOARDS, Board
from tinypipe.config.schema import Project

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "config.md"
REGENERATE = ".venv/bin/python -m tinypipe.config.reference --write"

# Plain strings checked against the board registry: by a validator (target.board) and by the loader (matrix.board).
BOARD_KEYS = ("target.board", "matrix.board")

MINIMAL_EXAMPLE = """\
name: gesture
model:
  layers:
    - {type: conv1d, filters: 8, kernel_size: 5}
    - {type: maxpool1d, pool_size: 4}
    - {type: flatten}
    - {type: dense, units: 3}
"""

INTRO = """\
A tinypipe project is a directory holding a `project.yaml`. This page lists every key that file may hold: its
type, default, allowed values, what it does, and an example. A key is written as its path: `quantization.io` is
the key `io` in the section `quantization:`, and `[]` stands for any item of a list (`model.layers[].filters` is
the `filters` of a layer).

Only `name` and `model` are required; every other key has a default. A key tinypipe does not know is an error,
not ignored: like every config mistake it stops the run (exit code 2) with the file, line and column, the key
path and a hint. Changing a key reruns only the stages that read it and those downstream
(`tinypipe status --why` names the keys).

`tinypipe init DIR` writes a commented project.yaml that runs as is; `pipelines/gesture/project.yaml` is a
complete, commented example.
"""

# The minimal example with one misspelt key, for the page's sample error message (rendered by the loader itself).
MISTAKE = MINIMAL_EXAMPLE + "  epoch: 5\n"

EXTENDS = {
    "description": "start from another YAML file: tinypipe reads that file first and applies this file's keys "
    "over it, so several projects can share one base (the same model on other boards, say). A base may itself "
    "extend another file.",
    "type": "string: a path relative to the directory of the file that holds it (not to the working directory)",
    "rules": (
        "Mappings merge key by key, recursively; where both files set a key, this file's value wins.",
        "Lists and scalars replace the base's value whole: a `model.layers` here replaces the base's stack, and "
        "`data.classes` is not appended to.",
        "A key cannot be removed: `null` replaces the base's value with null, which only keys that may be null "
        "accept.",
        "`extends` is read at the top level only. The base need not be a valid project by itself: the merged "
        "result is validated, once.",
        "A file that extends itself, directly or through others, and a base that does not exist are errors.",
        "An error names the file and line that hold the wrong value, in the base or here "
        "(`base.yaml:5:7 seed: Input should be a valid integer`).",
        "Paths inside the config (`model.path`, `tflm.path`) stay relative to the project directory, whichever "
        "file sets them.",
        "Editing any file of the chain invalidates the validated-config cache.",
    ),
    "base": "# base.yaml\nname: gesture\nmodel:\n  layers:\n    - {type: conv1d, filters: 8, kernel_size: 5}\n"
    "    - {type: flatten}\n    - {type: dense, units: 3}\nquantization:\n  io: float32\n",
    "child": "# project.yaml: the base's model, on a Cortex-M7, with int8 input and output\nextends: base.yaml\n"
    "target:\n  board: mps2-an500\nquantization:\n  io: int8\n",
}


# --- reading the schema -----------------------------------------------------------------------------------------

_SCALARS = {str: ("string", "strings"), int: ("integer", "integers"), float: ("number", "numbers"),
            bool: ("boolean", "booleans")}


def _without_none(annotation: Any) -> tuple[Any, bool]:
    """(annotation minus None, whether None is allowed): `int | None` -> (int, True)."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = typing.get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        if len(rest) < len(args):
            return (rest[0] if len(rest) == 1 else Union[tuple(rest)]), True
    return annotation, False


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _list_item(annotation: Any) -> Any | None:
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is list else None


def _tagged_union(annotation: Any) -> tuple[list[type[BaseModel]], str] | None:
    """A discriminated union, `Annotated[Union[A, B], Field(discriminator="type")]`: (its models, the tag key)."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return None
    inner, *extras = typing.get_args(annotation)
    tag = next((e.discriminator for e in extras if isinstance(e, FieldInfo) and e.discriminator), None)
    if tag is None or typing.get_origin(inner) is not Union:
        return None
    return list(typing.get_args(inner)), tag


def _tag_of(member: type[BaseModel], tag: str) -> str:
    return typing.get_args(member.model_fields[tag].annotation)[0]


def _literal_values(annotation: Any) -> list | None:
    if typing.get_origin(annotation) is Literal:
        return list(typing.get_args(annotation))
    item = _list_item(annotation)
    return _literal_values(item) if item is not None else None


def _type_text(annotation: Any, limits: list[str] = ()) -> str:
    core, optional = _without_none(annotation)
    text = ", ".join([_core_type_text(core), *([" and ".join(limits)] if limits else [])])
    return f"{text}, or null" if optional else text


def _core_type_text(annotation: Any) -> str:
    if annotation in _SCALARS:
        return _SCALARS[annotation][0]
    if typing.get_origin(annotation) is Literal:
        return _SCALARS[type(typing.get_args(annotation)[0])][0]
    if _is_model(annotation):
        return "mapping"
    item = _list_item(annotation)
    if item is not None:
        union = _tagged_union(item)
        if union is not None:
            return f"list of mappings, each with a `{union[1]}`"
        if _is_model(item):
            return "list of mappings"
        if typing.get_origin(item) is Literal:
            return f"list of {_SCALARS[type(typing.get_args(item)[0])][1]}"
        if item in _SCALARS:
            return f"list of {_SCALARS[item][1]}"
    if typing.get_origin(annotation) is Union:  # `float | list[float]`: one value for all, or one each
        return " or ".join(_core_type_text(member) for member in typing.get_args(annotation))
    raise TypeError(f"no documentation for the type {annotation!r}: teach tinypipe/config/reference.py")


def _constraints(path: str, info: FieldInfo) -> list[str]:
    out = []
    words = [(annotated_types.Ge, "ge", "at least {}"), (annotated_types.Gt, "gt", "more than {}"),
             (annotated_types.Le, "le", "at most {}"), (annotated_types.Lt, "lt", "less than {}"),
             (annotated_types.MinLen, "min_length", "at least {} items"),
             (annotated_types.MaxLen, "max_length", "at most {} items")]
    for m in info.metadata:
        said = next((text.format(getattr(m, attr)) for kind, attr, text in words if isinstance(m, kind)), None)
        if said is not None:
            out.append(said)
        elif getattr(m, "pattern", None):
            out.append(f"matching `{m.pattern}`")
        else:  # a constraint the page would silently leave out
            raise TypeError(f"{path}: no documentation for the constraint {m!r}: teach tinypipe/config/reference.py")
    return out


def _default_value(info: FieldInfo) -> Any:
    return info.default_factory() if info.default_factory is not None else info.default


def _example_value(info: FieldInfo) -> Any:
    """The field's first example; else its default (when it has one worth showing); else None."""
    if info.examples:
        return info.examples[0]
    if info.is_required():
        return None
    value = _default_value(info)
    return None if isinstance(value, BaseModel) else value


def _item_template(model: type[BaseModel], tag: str | None) -> dict:
    """The smallest valid-looking item: its tag and every required key with its example."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name == tag:
            out[name] = _tag_of(model, tag)
        elif info.is_required() and info.examples:
            out[name] = info.examples[0]
    return out


# --- rendering values ---------------------------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    """YAML as project.yaml files are written: sections in block style with list items indented under their key,
    lists of scalars and list items that are mappings on one line (`axes: [x, y, z]`, `- {type: flatten}`)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):
        return super().increase_indent(flow, False)


class _Inline(dict):
    """A mapping written on one line."""


def _represent_dict(dumper: _Dumper, data: dict) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", list(data.items()), flow_style=isinstance(data, _Inline))


def _represent_list(dumper: _Dumper, data: list) -> yaml.Node:
    flat = not any(isinstance(item, (dict, list)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(_Inline, _represent_dict)
_Dumper.add_representer(list, _represent_list)


def _styled(value: Any, in_list: bool = False) -> Any:
    if isinstance(value, dict):
        items = {k: _styled(v) for k, v in value.items()}
        return _Inline(items) if in_list else items
    if isinstance(value, list):
        return [_styled(v, in_list=True) for v in value]
    return value


def _yaml_block(value: Any) -> str:
    return yaml.dump(_styled(value), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


def _flow(value: Any) -> str:
    """A value as YAML flow text, for one line of prose: `[x, y, z]`, `{io: int8}`, `'0.21'`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        plain = value and value.strip() == value and not any(c in value for c in ",[]{}#:'\"")
        return value if plain and yaml.safe_load(value) == value else "'" + value.replace("'", "''") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as YAML")


def _sentence(text: str) -> str:
    text = inspect.cleandoc(text).replace("\n", " ")
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


# --- the walk -----------------------------------------------------------------------------------------------------

@dataclass
class Entry:
    """One heading of the page: a key (leaf or section), or one kind of a tagged list item (a layer type)."""

    level: int
    title: str  # the heading, Markdown
    text: list[str] = field(default_factory=list)  # paragraphs
    facts: list[tuple[str, str]] = field(default_factory=list)  # (label, Markdown)
    example: str | None = None  # YAML
    after: list[str] = field(default_factory=list)  # Markdown lines after the example (the board table)
    row: tuple[str, str, str] | None = None  # (key, type, default) for the table of all keys


# A step from the top of project.yaml to a key: ("key", name) or ("item", template of a list item).
Trail = tuple


def _nest(trail: Trail, value: Any) -> Any:
    for kind, arg in reversed(trail):
        value = {arg: value} if kind == "key" else [{**arg, **value}]
    return value


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _walk(model: type[BaseModel], prefix: str, level: int, trail: Trail, skip: str | None = None) -> list[Entry]:
    entries: list[Entry] = []
    for name, info in model.model_fields.items():
        if name == skip:
            continue
        path = _join(prefix, name)
        core, _ = _without_none(info.annotation)
        entry = _key_entry(path, name, info, level, trail)
        entries.append(entry)
        key_trail = trail + (("key", name),)
        if _is_model(core):
            entry.text = _docstring(core) or entry.text  # a section's help is its model's docstring
            entries.extend(_walk(core, path, level + 1, key_trail))
            continue
        item = _list_item(core)
        union = _tagged_union(item) if item is not None else None
        if union is not None:
            entries.extend(_union_entries(path, union, level + 1, key_trail))
        elif item is not None and _is_model(item):
            entry.text.extend(_docstring(item))
            entries.extend(_walk(item, path + "[]", level + 1, key_trail + (("item", _item_template(item, None)),)))
    return entries


def _docstring(model: type[BaseModel]) -> list[str]:
    return [_sentence(model.__doc__)] if model.__doc__ else []


def _key_entry(path: str, name: str, info: FieldInfo, level: int, trail: Trail) -> Entry:
    core, optional = _without_none(info.annotation)
    entry = Entry(level=level, title=f"`{path}`")
    if info.description:
        entry.text.append(_sentence(info.description))
    kind = _type_text(info.annotation)
    entry.facts.append(("type", _type_text(info.annotation, _constraints(path, info))))
    if path in BOARD_KEYS:
        each = "each " if _list_item(core) is not None else ""
        entry.facts.append(("allowed", f"{each}a board name: " + ", ".join(f"`{b}`" for b in BOARDS)))
    else:
        allowed = _literal_values(core)
        if allowed is not None:
            each = "each one of " if _list_item(core) is not None else ""
            entry.facts.append(("allowed", each + ", ".join(f"`{_flow(v)}`" for v in allowed)))
    default = _default_text(info)
    entry.facts.append(("default", default))
    if not _is_model(core):
        example = _example_value(info)
        if example is not None:
            entry.example = _yaml_block(_nest(trail + (("key", name),), example))
    if path == "target.board":
        entry.after = _board_table()
    entry.row = (f"`{path}`", kind, default)
    return entry


def _default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = _default_value(info)
    if isinstance(value, BaseModel):
        return "each key below at its default"
    if value is None:
        return "not set (`null`)"
    return f"`{_flow(value)}`"


def _union_entries(path: str, union: tuple[list[type[BaseModel]], str], level: int, trail: Trail) -> list[Entry]:
    members, tag = union
    tags = [_tag_of(m, tag) for m in members]
    first = _item_template(members[0], tag)
    tag_path = f"{path}[].{tag}"
    entries = [Entry(
        level=level, title=f"`{tag_path}`",
        text=["Which kind of item this is; it decides the item's other keys, listed under each kind below."],
        facts=[("type", "string"), ("allowed", ", ".join(f"`{t}`" for t in tags)), ("default", "required")],
        example=_yaml_block(_nest(trail + (("item", first),), {})),
        row=(f"`{tag_path}`", "string", "required"),
    )]
    for member, value in zip(members, tags):
        template = _item_template(member, tag)
        others = [n for n in member.model_fields if n != tag]
        text = _docstring(member)
        if not others:
            text.append(f"No keys besides `{tag}`.")
        full = {**template, **{n: _example_value(member.model_fields[n]) for n in others}}
        entries.append(Entry(level=level, title=f"`{path}[]` with `{tag}: {value}`", text=text,
                             example=_yaml_block(_nest(trail + (("item", full),), {}))))
        member_trail = trail + (("item", template),)
        for entry in _walk(member, f"{path}[]", level + 1, member_trail, skip=tag):
            if entry.row is not None:
                entry.row = (f"{entry.row[0]} ({tag}: {value})", *entry.row[1:])
            entries.append(entry)
    return entries


def _runs_on(board: Board) -> str:
    if not board.buildable:
        return "not buildable yet"
    ways = []
    emulator = board.emulator
    if emulator is not None:
        ways.append(f"QEMU `{emulator.qemu_machine}`")
    if board.pyocd_target:
        ways.append("a probe (pyocd)")
    return " or ".join(ways)


def _board_table() -> list[str]:
    lines = ["The boards (`tinypipe boards` shows them; `tinypipe boards NAME` one in full):", "",
             "| board | core | description | runs on |", "|---|---|---|---|"]
    for board in BOARDS.values():
        lines.append(f"| `{board.name}` | {board.core} | {board.description} | {_runs_on(board)} |")
    return lines


# --- the page -----------------------------------------------------------------------------------------------------

def _extends_entry() -> Entry:
    return Entry(
        level=2, title="`extends`", text=[_sentence(EXTENDS["description"])],
        facts=[("type", EXTENDS["type"]), ("default", "not set")],
        after=["How the files combine:", "", *(f"- {rule}" for rule in EXTENDS["rules"]), "",
               "```yaml", *EXTENDS["base"].splitlines(), "```", "",
               "```yaml", *EXTENDS["child"].splitlines(), "```"],
        row=("`extends`", "string", "not set"),
    )


def _render_entry(entry: Entry) -> list[str]:
    lines = ["#" * entry.level + " " + entry.title, ""]
    for paragraph in entry.text:
        lines += [paragraph, ""]
    for label, value in entry.facts:
        lines.append(f"- {label}: {value}")
    if entry.example is not None:
        if not entry.facts:
            lines += ["```yaml", *entry.example.splitlines(), "```"]
        else:
            lines += ["- example:", "", "  ```yaml", *(f"  {line}" for line in entry.example.splitlines()), "  ```"]
    if entry.facts or entry.example is not None:
        lines.append("")
    if entry.after:
        lines += [*entry.after, ""]
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _sample_error() -> str:
    """What tinypipe prints for MISTAKE: the loader's own message and hint."""
    from pydantic import ValidationError

    from tinypipe.config.loader import ConfigError, parse_yaml, raise_validation_error

    located = parse_yaml(MISTAKE, "project.yaml")
    try:
        Project.model_validate(located.data)
    except ValidationError as exc:
        try:
            raise_validation_error(exc, located, Project, "project.yaml")
        except ConfigError as error:
            return str(error)
    raise AssertionError("the misspelt example validated")


def render_reference() -> str:
    """docs/config.md: the whole page, as a function of the schema, the loader and the board registry only."""
    minimal = Project.model_validate(yaml.safe_load(MINIMAL_EXAMPLE))
    entries = [_extends_entry(), *_walk(Project, "", 2, ())]
    lines = [
        "# project.yaml reference",
        "",
        "<!-- Generated from tinypipe/config/schema.py by `python -m tinypipe.config.reference --write`: "
        "edit the schema, not this file. -->",
        "",
        *INTRO.splitlines(),
        "",
        "For example, `epoch: 5` under `model:` in the project below gives:",
        "",
        "```",
        *_sample_error().splitlines(),
        "```",
        "",
        "## A minimal project",
        "",
        "```yaml",
        *MINIMAL_EXAMPLE.splitlines(),
        "```",
        "",
        "The same project with every default spelled out, as tinypipe validates it (the stages read this):",
        "",
        "```yaml",
        *_yaml_block(minimal.model_dump(mode="json")).splitlines(),
        "```",
        "",
        "## All keys",
        "",
        "| key | type | default |",
        "|---|---|---|",
        *(f"| {_cell(e.row[0])} | {_cell(e.row[1])} | {_cell(e.row[2])} |" for e in entries if e.row is not None),
        "",
    ]
    for entry in entries:
        lines += _render_entry(entry)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinypipe.config.reference",
                                     description="Print the project.yaml reference (docs/config.md).")
    parser.add_argument("--write", action="store_true", help=f"replace {DOC_PATH} instead of printing")
    args = parser.parse_args(argv)
    text = render_reference()
    if args.write:
        from tinypipe.core.fs import atomic_write_text

        DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(DOC_PATH, text)
        print(f"wrote {DOC_PATH}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
