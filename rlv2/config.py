"""Configuration files and command-line options, both read off the config dataclasses.

The defaults live in one place: the fields of the config dataclasses (``TrainConfig``
and the ``ReplayConfig``, ``FeatureConfig``, weights and rules it holds; the sweep's
``SweepConfig``), each with a docstring under it. This module walks those fields, so a
new field is at once a key of the TOML file, an option of the command line (its help
is the field's docstring, its default the field's default) and part of
``--print-config``, with no other edit. CleanRL derives its command line from its
``Args`` dataclass the same way (with ``tyro``); this is the small version of it.

Each leaf field is a :class:`Setting`:

- a number, a string, an enum (by value): ``--epochs 5``, ``epochs = 5``;
- a dataclass of numbers (the reward weights, the regime rule): one option with the
  numbers comma-separated in field order, ``--meta-weights 0.5,0.2,0.15``; a table in
  TOML, where any of its keys may be left out;
- a tuple of those (the values a sweep tries): ``--alpha 0.01,0.1`` or
  ``--alpha 0.01 --alpha 0.1``; ``--meta-weights`` repeated once per weight vector;
- a state space: in TOML only, as the bin edges of each binned feature
  (``[replay.meta_space]`` ``volatility = [0.005, 0.02]``; the features not named keep
  their edges).

Other nested dataclasses are sections: TOML tables (``[replay]``, ``[features]``)
whose leaves are options named by the leaf alone (``--alpha``, ``--lookback-bars``);
the names are unique across a tree (:func:`settings` checks it).
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import re
import textwrap
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, is_dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from rlv2.states import StateSpace

NUMBER_TYPES = (int, float)


class ConfigError(ValueError):
    """A configuration value (from a file or the command line) that is not valid."""


@dataclass(frozen=True)
class Setting:
    """One leaf of a configuration: a key of the TOML file and an option of the command line."""

    path: tuple[str, ...]
    """Field names from the root dataclass down to the leaf."""
    kind: Any
    """The value's type: int, float, str, bool, an Enum, a dataclass of numbers, StateSpace."""
    many: bool
    """A tuple of ``kind`` values (the values a sweep tries)."""
    optional: bool
    """``None`` is a valid value (absent from the TOML file)."""
    default: Any
    """The field's default value."""
    doc: str
    """The field's docstring, on one line."""

    @property
    def key(self) -> str:
        """The dotted TOML key (``replay.alpha``)."""
        return ".".join(self.path)

    @property
    def flag(self) -> str:
        """The command-line option (``--epsilon-decay``)."""
        return "--" + self.path[-1].replace("_", "-")

    @property
    def on_command_line(self) -> bool:
        """Whether the setting has an option (a state space is set in a file only)."""
        return self.kind is not StateSpace

    def help(self) -> str:
        """The option's help: the field's docstring and its default."""
        doc = self.doc.replace("``", "")
        if self.default is None or (self.many and not self.default):
            return doc
        return f"{doc} (default {format_value(self, self.default)})"

    def metavar(self) -> str:
        """How the option's value is written, for ``--help``."""
        if is_number_dataclass(self.kind):
            return ",".join(f.name.upper() for f in fields(self.kind))
        name = self.path[-1].upper()
        return f"{name}[,{name}...]" if self.many else name

    def parse(self, text: str) -> Any:
        """The value of one occurrence of the option (a list of values if ``many``)."""
        if is_number_dataclass(self.kind):
            hints = _type_hints(self.kind)
            names = [f.name for f in fields(self.kind)]
            parts = [t.strip() for t in text.split(",")]
            if len(parts) != len(names):
                raise ConfigError(f"expected {len(names)} numbers {','.join(names)}, got {text!r}")
            numbers = [_from_text(hints[n], p) for n, p in zip(names, parts, strict=True)]
            value = _number_dataclass(self, numbers)
            return [value] if self.many else value
        if self.many:
            return [_from_text(self.kind, t.strip()) for t in text.split(",") if t.strip()]
        return _from_text(self.kind, text)


def _from_text(kind: Any, text: str) -> Any:
    """A number, string, flag or enum member from its text on the command line."""
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ConfigError(f"expected true or false, got {text!r}")
        return text.lower() == "true"
    if isinstance(kind, type) and issubclass(kind, Enum):
        return _enum_member(kind, text)
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"expected {_kind_name(kind)}, got {text!r}") from None


def is_number_dataclass(kind: Any) -> bool:
    """A dataclass whose fields are all numbers (written as one comma-separated value)."""
    if not (isinstance(kind, type) and is_dataclass(kind)):
        return False
    hints = _type_hints(kind)
    return all(hints[f.name] in NUMBER_TYPES for f in fields(kind))


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass, by field name, each on one line."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # no source (a frozen executable): no help text
            continue
        body = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)).body
        for node, after in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def _unwrap(annotation: Any) -> tuple[Any, bool, bool]:
    """``(kind, many, optional)`` of a field's annotation."""
    optional = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) != 1:
            raise TypeError(f"unsupported union annotation {annotation!r}")
        annotation = args[0]
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"unsupported tuple annotation {annotation!r}: use tuple[X, ...]")
        return args[0], True, optional
    return annotation, False, optional


def is_section(kind: Any) -> bool:
    """A nested dataclass whose fields are settings of their own (``replay``, ``features``)."""
    return (
        isinstance(kind, type)
        and is_dataclass(kind)
        and kind is not StateSpace
        and not is_number_dataclass(kind)
    )


def _field_default(cls: type, name: str) -> Any:
    field = next(f for f in fields(cls) if f.name == name)
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    raise TypeError(f"{cls.__name__}.{name} has no default: every config field needs one")


@functools.cache
def settings(cls: type) -> tuple[Setting, ...]:
    """Every leaf setting of a config dataclass, depth first, in field order.

    Raises ``TypeError`` if two leaves would share an option name.
    """
    found = tuple(_settings(cls, ()))
    seen: dict[str, str] = {}
    for s in found:
        if s.on_command_line and seen.setdefault(s.flag, s.key) != s.key:
            raise TypeError(f"{cls.__name__}: {s.key} and {seen[s.flag]} would both be {s.flag}")
    return found


def _settings(cls: type, prefix: tuple[str, ...]) -> Iterable[Setting]:
    hints, docs = _type_hints(cls), field_docs(cls)
    for field in fields(cls):
        if not field.init or field.name.startswith("_"):
            continue
        kind, many, optional = _unwrap(hints[field.name])
        path = (*prefix, field.name)
        if is_section(kind) and not many:
            yield from _settings(kind, path)
            continue
        default = _field_default(cls, field.name)
        yield Setting(path, kind, many, optional, default, docs.get(field.name, ""))


def setting(cls: type, key: str) -> Setting:
    """The setting of ``cls`` at a dotted key (``replay.alpha``)."""
    for s in settings(cls):
        if s.key == key:
            return s
    raise KeyError(f"{cls.__name__} has no setting {key!r}")


# --- values -------------------------------------------------------------------------------


def _kind_name(kind: Any) -> str:
    if kind is int:
        return "an integer"
    if kind is float:
        return "a number"
    if kind is str:
        return "a string"
    if kind is bool:
        return "true or false"
    if isinstance(kind, type) and issubclass(kind, Enum):
        return "one of " + ", ".join(str(e.value) for e in kind)
    return getattr(kind, "__name__", str(kind))


def _enum_member(kind: type[Enum], value: Any) -> Enum:
    for member in kind:
        if value == member.value or (isinstance(value, str) and value.upper() == member.name):
            return member
    raise ConfigError(f"expected {_kind_name(kind)}, got {value!r}")


def _number(s: Setting, kind: Any, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int if kind is int else NUMBER_TYPES):
        raise ConfigError(f"{s.key}: expected {_kind_name(kind)}, got {value!r}")
    return kind(value)


def _number_dataclass(s: Setting, values: Sequence[Any] | Mapping[str, Any], base: Any = None):
    """A dataclass of numbers from its numbers in field order, or from a (partial) table."""
    hints = _type_hints(s.kind)
    names = [f.name for f in fields(s.kind)]
    if isinstance(values, Mapping):
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(f"{s.key}: unknown keys {unknown}; expected some of {names}")
        if base is None and set(values) != set(names):
            raise ConfigError(f"{s.key}: give all of {names}")
        items = dict(values)
    else:
        if len(values) != len(names):
            raise ConfigError(
                f"{s.key}: expected {len(names)} numbers ({','.join(names)}), got {list(values)}"
            )
        items = dict(zip(names, values, strict=True))
    parts = {k: _number(s, hints[k], v) for k, v in items.items()}
    return replace(base, **parts) if base is not None else s.kind(**parts)


def _one_value(s: Setting, value: Any, base: Any = None) -> Any:
    kind = s.kind
    if kind is StateSpace:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{s.key}: expected a table of bin edges by feature name")
        return space_with_edges(s, base, value)
    if is_number_dataclass(kind):
        if not isinstance(value, Mapping | list | tuple):
            raise ConfigError(f"{s.key}: expected a table of {_kind_name(kind)}'s numbers")
        return _number_dataclass(s, value, base)
    if kind in NUMBER_TYPES:
        return _number(s, kind, value)
    if isinstance(kind, type) and issubclass(kind, Enum):
        try:
            return _enum_member(kind, value)
        except ConfigError as error:
            raise ConfigError(f"{s.key}: {error}") from None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{s.key}: expected {_kind_name(kind)}, got {value!r}")
    return value


def convert(s: Setting, value: Any, base: Any = None) -> Any:
    """Check and convert a value read for a setting (TOML, JSON or parsed options)."""
    if value is None:
        if s.optional:
            return None
        raise ConfigError(f"{s.key}: a value is required")
    if s.many:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{s.key}: expected a list")
        return tuple(_one_value(s, v) for v in value)
    return _one_value(s, value, base)


def space_with_edges(s: Setting, space: StateSpace, edges: Mapping[str, Any]) -> StateSpace:
    """``space`` with the bin edges of the named binned features replaced."""
    binned = [f.name for f in space.features if f.edges]
    unknown = sorted(set(edges) - set(binned))
    if unknown:
        raise ConfigError(f"{s.key}: unknown features {unknown}; binned features: {binned}")
    features = []
    for feature in space.features:
        if feature.name in edges:
            given = edges[feature.name]
            if not isinstance(given, list | tuple) or not given:
                raise ConfigError(f"{s.key}.{feature.name}: expected a list of bin edges")
            sub = replace(s, path=(*s.path, feature.name), kind=float)
            try:
                feature = replace(feature, edges=tuple(_number(sub, float, e) for e in given))
            except ValueError as error:
                raise ConfigError(f"{s.key}: {error}") from None
        features.append(feature)
    return StateSpace(space.name, tuple(features))


def space_edges(space: StateSpace) -> dict[str, list[float]]:
    """The bin edges of each binned feature of a state space (its TOML form)."""
    return {f.name: list(f.edges) for f in space.features if f.edges}


def get(config: Any, path: Sequence[str]) -> Any:
    """The value at a path of fields."""
    for name in path:
        config = getattr(config, name)
    return config


def with_values(config: Any, values: Mapping[tuple[str, ...], Any]) -> Any:
    """A copy of a config dataclass with the values at some paths replaced (and validated)."""
    nested: dict[str, dict[tuple[str, ...], Any]] = {}
    changes: dict[str, Any] = {}
    for path, value in values.items():
        if len(path) == 1:
            changes[path[0]] = value
        else:
            nested.setdefault(path[0], {})[path[1:]] = value
    for name, inner in nested.items():
        changes[name] = with_values(getattr(config, name), inner)
    if not changes:
        return config
    try:
        return replace(config, **changes)
    except (ValueError, TypeError) as error:
        raise ConfigError(str(error)) from error


def from_data(cls: type, data: Mapping[str, Any], base: Any = None, source: str = "") -> Any:
    """A config from its (partial) TOML form: keys not given keep ``base``'s values.

    Unknown keys and values of the wrong type raise :class:`ConfigError` naming the key
    (and ``source``, the file they came from).
    """
    base = cls() if base is None else base
    known = {s.key: s for s in settings(cls)}
    values: dict[tuple[str, ...], Any] = {}

    def walk(table: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        for name, value in table.items():
            path = (*prefix, name)
            key = ".".join(path)
            if key in known:
                s = known[key]
                values[path] = convert(s, value, None if s.many else get(base, path))
            elif any(k.startswith(key + ".") for k in known) and isinstance(value, Mapping):
                walk(value, path)
            else:
                start = "".join(p + "." for p in prefix)
                names = sorted(
                    {k[len(start) :].split(".")[0] for k in known if k.startswith(start)}
                )
                where = f"[{'.'.join(prefix)}]" if prefix else "the top level"
                raise ConfigError(f"unknown setting {key!r}: {where} has {', '.join(names)}")

    try:
        walk(data, ())
        return with_values(base, values)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}" if source else str(error)) from None


def to_data(config: Any) -> dict[str, Any]:
    """The TOML form of a config: tables of plain values, ``None`` left out."""
    out: dict[str, Any] = {}
    for s in settings(type(config)):
        value = get(config, s.path)
        if value is None:
            continue
        table = out
        for name in s.path[:-1]:
            table = table.setdefault(name, {})
        table[s.path[-1]] = plain(s, value)
    return out


def plain(s: Setting, value: Any) -> Any:
    """A setting's value as plain TOML/JSON data."""
    if s.many:
        return [plain(replace(s, many=False), v) for v in value]
    if s.kind is StateSpace:
        return space_edges(value)
    if is_number_dataclass(s.kind):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    return value


def format_value(s: Setting, value: Any) -> str:
    """A value as it is written on the command line (``0.5,0.2,0.15``)."""
    if s.many:
        return ",".join(format_value(replace(s, many=False), v) for v in value)
    if is_number_dataclass(s.kind):
        return ",".join(repr(getattr(value, f.name)) for f in fields(value))
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


# --- TOML files ---------------------------------------------------------------------------


def read_toml(path: str | Path) -> dict[str, Any]:
    """The tables of a TOML file; :class:`ConfigError` names the file and the line."""
    try:
        with Path(path).open("rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"config file {path}: {error.strerror or error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path}: {error}") from error


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_value(value: Any) -> str:
    """One value in TOML syntax."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(text, text)
    if isinstance(value, str):
        # JSON's escapes are TOML's; TOML also escapes DEL, and takes other text as it is
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def toml_key(key: str) -> str:
    """A key, quoted unless it is a bare key."""
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _comment(text: str) -> list[str]:
    lines = textwrap.wrap(text.replace("``", "`"), 86, break_on_hyphens=False)
    return ["# " + line for line in lines]


def dumps(config: Any, root: tuple[str, ...] = (), header: str = "") -> str:
    """A config as a commented TOML document, each key under its field's docstring.

    ``root`` puts the whole config in a table (``("sweep",)``); ``header`` is a comment
    at the top. :func:`read_toml` and :func:`from_data` read it back to the same config.
    """
    cls = type(config)
    tables: dict[tuple[str, ...], list[Setting]] = {(): []}
    for s in settings(cls):
        if get(config, s.path) is not None:
            tables.setdefault(s.path[:-1], []).append(s)
    lines = _comment(header)
    for prefix, members in tables.items():
        values = [(s, plain(s, get(config, s.path))) for s in members]
        if prefix or root:
            lines += ["", *_comment(_section_doc(cls, prefix)), _header((*root, *prefix))]
        for s, value in values:
            if not isinstance(value, dict):
                lines += [*_comment(s.doc), f"{toml_key(s.path[-1])} = {toml_value(value)}"]
        for s, value in values:  # after the plain keys, which would otherwise fall into them
            if isinstance(value, dict):
                docs = (
                    field_docs(s.kind) if is_dataclass(s.kind) and s.kind is not StateSpace else {}
                )
                lines += ["", *_comment(s.doc), _header((*root, *s.path))]
                for k, v in value.items():
                    lines += [*_comment(docs.get(k, "")), f"{toml_key(k)} = {toml_value(v)}"]
    return "\n".join(lines).lstrip("\n") + "\n"


def _header(path: tuple[str, ...]) -> str:
    return "[" + ".".join(toml_key(name) for name in path) + "]"


def _section_doc(cls: type, prefix: tuple[str, ...]) -> str:
    doc = ""
    for name in prefix:
        doc = field_docs(cls).get(name, "")
        cls = _unwrap(_type_hints(cls)[name])[0]
    return doc
