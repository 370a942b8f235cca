"""Load project.yaml into a validated Project, with every error pointing at FILE:LINE:COL and the key path.

PyYAML's composer gives nodes with positions; we build plain data from them and remember where each key and
value came from, so a pydantic error's `loc` maps back to the line the user must edit.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

from tinypipe.core.errors import UserError

if TYPE_CHECKING:  # imported where used: a no-op run served from the config cache never loads them
    import yaml
    from pydantic import BaseModel, ValidationError

PROJECT_FILE = "project.yaml"
YAML_SUFFIXES = (".yaml", ".yml")
# bounds for files downloaded from anywhere: a project file is a few KB; these are far beyond any real one
MAX_FILE_BYTES = 1 << 20
MAX_VALUES = 100_000  # values after expanding aliases (a 457-byte alias bomb expands to billions)
MAX_DEPTH = 64  # nesting of mappings and lists (a recursive alias is infinitely deep)

Path_ = tuple  # a key path: ("model", "layers", 2, "units")


@dataclass(frozen=True)
class Mark:
    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class ConfigError(UserError):
    """A config mistake at a known place: `file:line:col key.path: message`."""

    def __init__(self, mark: Mark | None, key_path: str, message: str, hint: str | None = None):
        where = f"{mark} " if mark else ""
        key = f"{key_path}: " if key_path else ""
        super().__init__(f"{where}{key}{message}", hint)
        self.mark = mark
        self.key_path = key_path


@dataclass
class Located:
    """Plain data plus the position of every key (`keys`) and value (`values`) by key path."""

    data: Any
    keys: dict[Path_, Mark]
    values: dict[Path_, Mark]
    files: tuple[Path, ...] = ()  # every file read (project.yaml and its `extends:` chain)


def format_key_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = f'"{part}"' if "." in str(part) or "[" in str(part) else part  # a sweep: `matrix."model.epochs"`
            out += f".{part}" if out else str(part)
    return out


def _mark(file: str, m: yaml.Mark) -> Mark:
    return Mark(file, m.line + 1, m.column + 1)


def _construct(node: "yaml.Node", file: str, path: Path_, loc: Located, loader: "yaml.SafeLoader",
               budget: list[int]) -> Any:
    import yaml

    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(_mark(file, node.start_mark), format_key_path(path),
                          f"the document expands to more than {MAX_VALUES:,} values (YAML aliases repeating "
                          "large parts?)", "write the values out; a project file needs no aliases")
    if len(path) > MAX_DEPTH:
        raise ConfigError(_mark(file, node.start_mark), format_key_path(path[:3]) + "…",
                          f"nested more than {MAX_DEPTH} levels deep (or a YAML alias that contains itself)",
                          "a project file nests a few levels: check the indentation and the aliases")
    loc.values[path] = _mark(file, node.start_mark)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in (
            "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"):
        raise ConfigError(_mark(file, node.start_mark), format_key_path(path), f"unsupported YAML tag {node.tag[:60]!r}",
                          "a project file needs no tags: remove it")
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, file, path, loader)
            if not isinstance(key, str):
                raise ConfigError(_mark(file, key_node.start_mark), format_key_path(path),
                                  f"keys must be strings, got {key!r}"[:200])
            if key in out:
                first = loc.keys[path + (key,)]
                raise ConfigError(_mark(file, key_node.start_mark), format_key_path(path + (key,)),
                                  f"duplicate key (first given at line {first.line})",
                                  "remove one of the two entries")
            loc.keys[path + (key,)] = _mark(file, key_node.start_mark)
            out[key] = _construct(value_node, file, path + (key,), loc, loader, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, file, path + (i,), loc, loader, budget) for i, item in enumerate(node.value)]
    return _scalar(node, file, path, loader)


def _scalar(node: "yaml.Node", file: str, path: Path_, loader: "yaml.SafeLoader") -> Any:
    """A scalar as its tag says (`!!int 7`); a value its tag cannot read is a config error, not a crash."""
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        raise ConfigError(_mark(file, node.start_mark), format_key_path(path), "a key must be a plain string")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.MarkedYAMLError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(_mark(file, node.start_mark), format_key_path(path),
                          f"cannot read this {node.tag.rsplit(':', 1)[-1]} value: {str(exc)[:120]}",
                          "write a plain value (a number, true/false, or a string in quotes)") from None


def parse_yaml(text: str, file: str) -> Located:
    import yaml

    loc = Located(None, {}, {})
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # its reader refuses control characters right here
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(Mark(file, 1, 1), "", "the file is empty",
                              "start from `tinypipe init` or pipelines/gesture/project.yaml")
        loc.data = _construct(node, file, (), loc, loader, [MAX_VALUES])
    except yaml.MarkedYAMLError as exc:
        mark = _mark(file, exc.problem_mark) if exc.problem_mark else Mark(file, 1, 1)
        problem = exc.problem or str(exc)
        context = f" ({exc.context})" if exc.context else ""
        raise ConfigError(mark, "", f"invalid YAML: {problem}{context}",
                          "check the indentation: keys of one mapping must start in the same column, "
                          "and a value that is a mapping goes on the lines below its key, indented") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, other control characters)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise ConfigError(Mark(file, line, column), "",
                          f"invalid character {exc.character!r} (code {ord(exc.character) if isinstance(exc.character, str) else exc.character:#x})",
                          "a project file is plain text: remove the character") from None
    except RecursionError:
        raise ConfigError(Mark(file, 1, 1), "", f"nested too deeply to read (more than {MAX_DEPTH} levels)",
                          "a project file nests a few levels: check the brackets and indentation") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(loc.data, dict):
        raise ConfigError(Mark(file, 1, 1), "", "the top level must be a mapping of sections (name:, model:, …)")
    return loc


def read_text_file(path: Path, display: str, what: str = "project file") -> str:
    """The text of a config file: a regular file of bounded size in UTF-8, or a UserError saying which rule
    it breaks (never its content: the path may point anywhere)."""
    import stat

    try:
        st = path.stat()
    except FileNotFoundError:
        raise UserError(f"{display}: no such file", "create one with `tinypipe init DIR`, or pass the "
                        "directory that holds project.yaml") from None
    except OSError as exc:
        raise UserError(f"{display}: cannot read the {what}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise UserError(f"{display}: the {what} is {kind}", f"point at a YAML file ({' or '.join(YAML_SUFFIXES)})")
    if st.st_size > MAX_FILE_BYTES:
        raise UserError(f"{display}: the {what} is {st.st_size:,} bytes; a project file is at most "
                        f"{MAX_FILE_BYTES:,}", "is this the right file?")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UserError(f"{display}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(Mark(display, line, column), "", f"not UTF-8 text (byte 0x{data[exc.start]:02x})",
                          "save the file as UTF-8") from None


def _deep_merge(base: Located, override: Located) -> Located:
    """`extends:` — the override's keys win; mappings merge recursively, lists and scalars replace."""

    def merge(b: Any, o: Any, path: Path_) -> Any:
        if isinstance(b, dict) and isinstance(o, dict):
            out = dict(b)
            for k, v in o.items():
                out[k] = merge(b[k], v, path + (k,)) if k in b else v
            return out
        return o

    keys = dict(base.keys)
    values = dict(base.values)
    keys.update(override.keys)
    values.update(override.values)
    return Located(merge(base.data, override.data, ()), keys, values, base.files + override.files)


def read_located(path: Path, _seen: tuple[Path, ...] = ()) -> Located:
    path = Path(path)
    display = _display(path)
    what = "file named by `extends:`" if _seen else "project file"
    loc = parse_yaml(read_text_file(path, display, what), display)
    loc.files = (path.resolve(),)
    parent = loc.data.pop("extends", None)
    if parent is None:
        return loc
    mark = loc.values.get(("extends",))
    if not isinstance(parent, str) or not parent.strip():
        raise ConfigError(mark, "extends", "must be a path to another YAML file")
    try:
        parent_path = (path.parent / parent).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise ConfigError(mark, "extends", f"{parent}: cannot resolve the path (a symlink loop?)") from None
    if parent_path.suffix not in YAML_SUFFIXES:
        raise ConfigError(mark, "extends", f"{parent}: not a YAML file (the name must end in "
                          f"{' or '.join(YAML_SUFFIXES)})", "extends names another project fragment, e.g. "
                          "`extends: ../base.yaml`")
    if parent_path in _seen or parent_path == path.resolve():
        raise ConfigError(mark, "extends", f"{parent} extends itself (a cycle)")
    if not parent_path.exists():
        raise ConfigError(mark, "extends", f"{parent}: no such file", "the path is relative to this file")
    base = read_located(parent_path, _seen + (path.resolve(),))
    return _deep_merge(base, loc)


def _display(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except (ValueError, OSError, RuntimeError):  # elsewhere, or a symlink loop
        return str(path)


# --- mapping pydantic errors back to YAML positions -------------------------------------------------------


def _yaml_path(loc: tuple, data: Any) -> Path_:
    """Pydantic's loc includes union tags (e.g. 'dense' for a layer); drop what is not in the data."""
    out: list = []
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, dict) and cur.get("type") == part:
            continue  # discriminator tag
        else:
            out.append(part)
            cur = None
    return tuple(out)


def _model_at(root: "type[BaseModel]", path: Path_, data: Any) -> "type[BaseModel] | None":
    """The pydantic model class that validates the mapping at `path` (for did-you-mean on unknown keys)."""
    import typing

    from pydantic import BaseModel

    cls: Any = root
    cur = data
    for part in path:
        if isinstance(part, int):
            cur = cur[part] if isinstance(cur, list) and part < len(cur) else None
            continue
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or part not in cls.model_fields:
            return None
        cls = cls.model_fields[part].annotation
        cur = cur.get(part) if isinstance(cur, dict) else None
        cls = _unwrap(cls, cur, typing)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _unwrap(annotation: Any, value: Any, typing: Any) -> Any:
    """Reduce Optional[...], list[...], Annotated[Union[...]] to the model class that fits `value`."""
    from pydantic import BaseModel
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0], value, typing)
    if origin in (list, tuple):
        item = value[0] if isinstance(value, list) and value else None
        return _unwrap(typing.get_args(annotation)[0], item, typing)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if isinstance(value, dict) and "type" in value:
            for m in models:
                tag = m.model_fields.get("type")
                if tag is not None and value["type"] in typing.get_args(tag.annotation):
                    return m
        if len(models) == 1:
            return models[0]
        return members[0] if len(members) == 1 else None
    return annotation


SECRET_ERRORS = ("secret_in_url",)  # schema errors whose input is a secret


def _message(err: dict) -> str:
    kind = err["type"]
    msg = err["msg"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return f"unknown layer type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return "each layer needs a `type:` (conv1d, maxpool1d, avgpool1d, flatten, dense, dropout)"
    if kind in SECRET_ERRORS:  # never echo the value: it holds the secret
        return msg
    # a cross-key check's input is a whole section: its message says what was wrong
    if (kind != "cross_key" and "input" in err and repr(err["input"]) not in msg
            and not isinstance(err["input"], (dict, list))):
        return f"{msg} (got {err['input']!r})"
    return msg


# words people write for a choice under another name (`optimize: fast`): suggested when the choice exists
SYNONYMS = {"fast": "speed", "fastest": "speed", "performance": "speed", "perf": "speed", "small": "size",
            "smallest": "size", "flash": "size", "memory": "ram", "mem": "ram", "default": "balanced"}


def _hint(err: dict, path: Path_, located: Located, root: type[BaseModel]) -> str | None:
    from tinypipe.config.boards import BOARDS

    kind = err["type"]
    if kind == "extra_forbidden" and path:
        model = _model_at(root, path[:-1], located.data)
        if model is not None:
            allowed = [f for f in model.model_fields]
            close = difflib.get_close_matches(str(path[-1]), allowed, n=1)
            if close:
                return f"did you mean `{close[0]}`? (allowed here: {', '.join(allowed)})"
            return f"allowed here: {', '.join(allowed)}"
    if path and path[-1] == "board" or (len(path) >= 2 and path[-2] == "board"):
        given = str(err.get("input", ""))
        close = difflib.get_close_matches(given, list(BOARDS), n=1)
        prefix = f"did you mean `{close[0]}`? " if close else ""
        return f"{prefix}known boards: {', '.join(BOARDS)} (see `tinypipe boards`)"
    if kind in ("literal_error", "enum"):
        allowed = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        given = str(err.get("input", ""))
        close = difflib.get_close_matches(given.lower(), allowed, n=1)
        meant = SYNONYMS.get(given.lower())
        if meant in allowed:
            close = [meant]
        if close:
            return f"did you mean `{close[0]}`?"
        return None
    if kind == "missing":
        return f"add `{path[-1]}:` here" if path else None
    if kind == "secret_in_url":
        return ("remove `:password` from the URL: ssh finds keys through ssh-agent, ~/.ssh/config and ~/.ssh/id_*, "
                "S3 through AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or ~/.aws); or pass a private URL with "
                "--remote-cache or $TINYPIPE_REMOTE_CACHE")
    return None


def _error_path(err: dict, data: Any, spelled_out) -> Path_:
    """The key path a validation error is about. A cross-key check (`schema.refuse`) names candidate key paths,
    relative to the model that raised it: the first one `spelled_out` in the file wins, else the first, so the
    message still names the key to add."""
    path = _yaml_path(tuple(err["loc"]), data)
    if err["type"] != "cross_key":
        return path
    paths = [path + tuple(int(p) if p.isdigit() else p for p in c.split(".")) for c in err["ctx"]["at"]]
    return next((p for p in paths if spelled_out(p)), paths[0])


def _has_path(data: Any, path: Path_) -> bool:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return False
    return True


def raise_validation_error(exc: ValidationError, located: Located, root: type[BaseModel], file: str) -> None:
    errors = exc.errors(include_url=False)
    first = errors[0]
    path = _error_path(first, located.data, lambda p: p in located.keys)
    if first["type"] == "extra_forbidden":
        mark = located.keys.get(path)
    else:
        mark = located.values.get(path)
    probe = path
    while mark is None and probe:
        probe = probe[:-1]
        mark = located.values.get(probe) if probe else None
    if mark is None:
        mark = Mark(file, 1, 1)
    extra = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    raise ConfigError(mark, format_key_path(path), _message(first) + extra, _hint(first, path, located, root))


def project_file(target: Path) -> Path:
    target = Path(target)
    return target if target.suffix in YAML_SUFFIXES else target / PROJECT_FILE


def load_project(project_dir: Path) -> "tuple[Any, Path]":
    """Read DIR/project.yaml (or a .yaml path) and return (Project, path of the file)."""
    project, path, _ = _load_validated(project_file(project_dir))
    return project, path


def _load_validated(path: Path) -> "tuple[Any, Path, tuple[Path, ...]]":
    from pydantic import ValidationError

    from tinypipe.config.schema import Project

    located = read_located(path)
    try:
        project = Project.model_validate(located.data)
    except ValidationError as exc:
        raise_validation_error(exc, located, Project, _display(path))
    if project.matrix is not None:
        project = _check_matrix(project, located)
    return project, path, located.files


# --- the matrix: boards and engines known and listed once, every sweep value valid in a full config ----------


def _check_matrix(project: Any, located: Located) -> Any:
    """Check `matrix:` beyond its own schema and return the project with every sweep value normalized (as the
    schema dumps it: what `expand` sets into each cell). Every cell's full config is validated; a bad sweep path
    or value is a ConfigError at the matrix entry that causes it."""
    import copy
    import itertools
    import json
    import math

    from pydantic import ValidationError

    from tinypipe.config.boards import BOARDS
    from tinypipe.config.matrix import FIXED_AXES, MAX_CELLS, parse_path, set_path
    from tinypipe.config.schema import Project

    matrix = project.matrix

    def value_at(key: str, i: int) -> Mark | None:
        return located.values.get(("matrix", key, i)) or located.values.get(("matrix", key))

    def refuse_duplicates(key: str, values: list, canon) -> None:
        seen: dict[str, int] = {}
        for i, value in enumerate(values):
            c = canon(value)
            if c in seen:
                raise ConfigError(value_at(key, i), format_key_path(("matrix", key, i)),
                                  f"{value!r} is listed twice (first as {format_key_path(('matrix', key, seen[c]))})"
                                  [:300], "each value makes its own variants: remove one")
            seen[c] = i

    for i, board in enumerate(matrix.board or ()):
        if board not in BOARDS:
            key = ("matrix", "board", i)
            close = difflib.get_close_matches(board, list(BOARDS), n=1)
            prefix = f"did you mean `{close[0]}`? " if close else ""
            raise ConfigError(located.values.get(key), format_key_path(key), f"unknown board {board!r}",
                              f"{prefix}known boards: {', '.join(BOARDS)} (see `tinypipe boards`)")
    refuse_duplicates("board", matrix.board or [], str)
    refuse_duplicates("engine", matrix.engine or [], str)

    axes: dict[str, list] = dict(matrix.model_extra or {})
    if not axes:
        return project
    paths: dict[str, tuple] = {}
    for key, values in axes.items():
        mark = located.keys.get(("matrix", key))
        if len(key) > 200:  # no key path of a project is near this long; never echo a huge one
            raise ConfigError(mark, format_key_path(("matrix", key[:40] + "…")), f"a key path of {len(key):,} "
                              "characters; a project's are a few dozen", "sweep a key path such as `model.epochs`")
        where = format_key_path(("matrix", key))
        path = parse_path(key)
        if path is None:
            raise ConfigError(mark, where, "not a key path of project.yaml",
                              "a sweep names a key the way it nests, e.g. `model.epochs` or "
                              "`model.layers[0].filters`; boards and engines go in `board:` and `engine:`")
        if path[0] == "matrix":
            raise ConfigError(mark, where, "a matrix cannot sweep itself")
        if path in (("target",), ("target", "board")):
            raise ConfigError(mark, where, "boards are swept by `board:`", "write `board: [...]` in the matrix")
        for other, other_path in paths.items():
            short, long = sorted((path, other_path), key=len)
            if long[:len(short)] == short:
                raise ConfigError(mark, where, f"overlaps the sweep over {other}", "sweep one of the two keys")
        if not values:
            raise ConfigError(mark, where, "a sweep needs at least one value", "list the values to try, or "
                              "remove the entry")
        paths[key] = path
    cells = math.prod([len(matrix.board or [0]), len(matrix.engine or [0])] + [len(v) for v in axes.values()])
    if cells > MAX_CELLS:
        raise ConfigError(located.keys.get(("matrix",)), "matrix", f"makes {cells:,} variants; at most "
                          f"{MAX_CELLS:,}", "sweep fewer values (or split the project)")

    raw = {k: v for k, v in located.data.items() if k != "matrix"}
    base = {k: v for k, v in project.model_dump(mode="json").items() if k != "matrix"}

    def get(data: Any, path: tuple) -> Any:
        for part in path:
            data = data[part]
        return data

    def fail(exc: ValidationError, data: Any, key: str, i: int, others: str = "") -> None:
        err = exc.errors(include_url=False)[0]
        err_path = _error_path(err, data, lambda p: _has_path(data, p))
        hint = _hint(err, err_path, Located(data, {}, {}), Project)
        path, here = paths[key], (located.keys.get(("matrix", key)), format_key_path(("matrix", key)))
        if err["type"] == "extra_forbidden" and err_path[:len(path)] == path[:len(err_path)]:
            if len(path) == 1:
                allowed = list(dict.fromkeys(list(FIXED_AXES) + [f for f in Project.model_fields if f != "matrix"]))
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean `{close[0]}`? " if close else ""
                hint += f"(sweeps name keys of a project: {', '.join(allowed)})"
            raise ConfigError(*here, f"no such key in a project: `{format_key_path(err_path)}` is unknown", hint)
        if len(err_path) < len(path) and path[:len(err_path)] == err_path and err["type"] not in ("value_error", "cross_key"):
            raise ConfigError(*here, f"no such key in a project: `{format_key_path(err_path)}` holds a value, not "
                              "keys")
        raise ConfigError(value_at(key, i), format_key_path(("matrix", key, i)),
                          f"{format_key_path(err_path)}: {_message(err)}{others}", hint)

    # every cell validated whole (the split's fractions, say, may be fine only together); an error is blamed on
    # the sweep whose key it concerns, naming the other sweeps' values when they may play a part
    keys = list(axes)
    normalized: dict[str, list] = {k: [None] * len(axes[k]) for k in keys}
    for picks in itertools.product(*[range(len(axes[k])) for k in keys]):
        data = copy.deepcopy(raw)
        for key, i in zip(keys, picks):
            try:
                set_path(data, paths[key], copy.deepcopy(axes[key][i]))
            except LookupError as exc:
                raise ConfigError(located.keys.get(("matrix", key)), format_key_path(("matrix", key)),
                                  f"no such key in this project: {exc}") from None
        try:
            cell = Project.model_validate(data).model_dump(mode="json")
        except ValidationError as exc:
            err_path = _error_path(exc.errors(include_url=False)[0], data, lambda p: _has_path(data, p))
            related = [k for k in keys if err_path[:len(paths[k])] == paths[k][:len(err_path)]] or keys
            blame = related[-1]
            below = err_path[:len(paths[blame])] == paths[blame]  # the error is in the swept value itself
            others = ", ".join(f"{k} = {axes[k][i]!r}" for k, i in zip(keys, picks)
                               if k != blame and not below)
            fail(exc, data, blame, picks[keys.index(blame)], f" (with {others})"[:200] if others else "")
        expected = copy.deepcopy(base)
        for key, i in zip(keys, picks):
            normalized[key][i] = get(cell, paths[key])
            set_path(expected, paths[key], normalized[key][i])
        # what `expand` builds from the cached JSON must be the config validated here
        assert {k: v for k, v in cell.items() if k != "matrix"} == expected, "a sweep value does not normalize"
    for key in keys:
        refuse_duplicates(key, normalized[key], lambda v: json.dumps(v, sort_keys=True))
    return project.model_copy(update={"matrix": matrix.model_copy(update=normalized)})


# --- the validated-config cache ---------------------------------------------------------------------------
# A no-op run must be fast: when project.yaml (and every file it extends) and the schema are byte-identical to
# the last validation, reuse its result (JSON) instead of importing pydantic and validating again.

CACHE_FILE = "config.json"


def _schema_fingerprint() -> str:
    import hashlib

    from tinypipe import __version__

    h = hashlib.sha256(__version__.encode())
    here = Path(__file__).parent
    for name in ("schema.py", "boards.py", "loader.py", "matrix.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()


def _file_hashes(files) -> dict[str, str]:
    import hashlib

    return {str(f): hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files}


def load_config(target: Path, cache_dir: Path | None) -> "tuple[dict[str, Any], Path]":
    """The validated config as JSON and the path of project.yaml; validated once per content change."""
    import json

    path = project_file(target)
    cache = cache_dir / CACHE_FILE if cache_dir is not None else None
    if cache is not None and cache.is_file():
        try:
            cached = json.loads(cache.read_text())
            if (cached.get("schema") == _schema_fingerprint()
                    and cached.get("entry") == str(path.resolve())
                    and _file_hashes(cached["files"]) == cached["files"]):
                return cached["config"], path
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a stale or unreadable cache is only a miss
    project, path, files = _load_validated(path)
    config = project.model_dump(mode="json")
    if cache is not None:
        from tinypipe.core.fs import atomic_write_json

        try:
            atomic_write_json(cache, {"schema": _schema_fingerprint(), "entry": str(path.resolve()),
                                      "files": _file_hashes(files), "config": config})
        except OSError:
            pass  # only a cache (a full disk, a read-only checkout): the next run validates again
    return config, path
