"""The config reference (docs/config.md), generated from the settings' models so it cannot fall
out of step: every key with its type, default and meaning. A key's meaning is the comment above
it in the model (or on its line); a table's is its class docstring.

Regenerate with ``python -m digest.config.reference > docs/config.md`` (``make docs``); a test
fails when the file differs from what this prints.
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic_core import PydanticUndefined

from digest.config.settings import Settings


@dataclass(frozen=True)
class KeyDoc:
    """One key of the config file: where it lives, its type, its default and what it means."""

    table: str
    key: str
    type: str
    default: str
    meaning: str


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def type_name(t: Any) -> str:
    """A TOML-reader's name for a Python annotation."""
    origin = get_origin(t)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(t) if a is not type(None)]
        inner = " or ".join(type_name(a) for a in args)
        return f"{inner} (optional)" if len(args) < len(get_args(t)) else inner
    if origin is list:
        (item,) = get_args(t)
        return "array of tables" if _is_model(item) else f"list of {type_name(item)}s"
    if origin is Literal:
        return " | ".join(f'"{a}"' if isinstance(a, str) else str(a) for a in get_args(t))
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
    if t in names:
        return names[t]
    if _is_model(t):
        return "table"
    return getattr(t, "__name__", str(t))


def _toml(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Path):
        return _toml(str(value))
    return str(value)


def _comments(cls: type[BaseModel]) -> dict[str, str]:
    """The comments above (and beside) each field in the class's source."""
    out: dict[str, str] = {}
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return out
    pending: list[str] = []
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        m = re.match(r"\s{4}(\w+)\s*:", line)
        if m and not line.startswith(" " * 5):
            beside = line.split("  # ", 1)[1].strip() if "  # " in line else ""
            out[m.group(1)] = " ".join([*pending, beside]).strip()
        pending = []
    return out


def _doc(cls: type[BaseModel]) -> str:
    own = cls.__dict__.get("__doc__")
    return " ".join(inspect.cleandoc(own).split()) if own else ""


def _walk(cls: type[BaseModel], table: str) -> Iterator[KeyDoc | tuple[str, str]]:
    """(table, its meaning) for each table, then its keys, tables inside it last."""
    yield table, _doc(cls)
    # A subclass's comment wins; one that only changes a default keeps its base's.
    comments = {k: v for base in reversed(cls.__mro__) if _is_model(base) for k, v in _comments(base).items() if v}
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in cls.model_fields.items():
        if field.exclude or field.annotation is SecretStr or SecretStr in get_args(field.annotation):
            continue  # filled from the environment, never a key of the file
        t = field.annotation
        sub_path = f"{table}.{name}" if table else name
        inner: list[type[BaseModel]] = [a for a in get_args(t) if _is_model(a)]
        if isinstance(t, type) and issubclass(t, BaseModel):
            nested.append((sub_path, t))
            continue
        if get_origin(t) in (Union, types.UnionType) and inner:
            nested.append((sub_path, inner[0]))  # an optional table: [delivery.dkim]
            continue
        if get_origin(t) is list and inner:
            nested.append((f"[{sub_path}]", inner[0]))  # an array of tables: [[sources]]
            continue
        default = "required" if field.default is PydanticUndefined else _toml(field.default)
        yield KeyDoc(table, name, type_name(t), default, comments.get(name, ""))
    for sub_table, sub in nested:
        yield from _walk(sub, sub_table)


def config_keys() -> list[KeyDoc]:
    return [k for k in _walk(Settings, "") if isinstance(k, KeyDoc)]


def config_reference() -> str:
    """docs/config.md, as Markdown."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated from digest/config by `make docs` (python -m digest.config.reference);"
        " do not edit by hand. -->",
        "",
        "digest reads one TOML file (`--config FILE`, else `$DIGEST_CONFIG`, else `config/digest.toml`)."
        " Unknown keys are errors; relative paths resolve against the config file's folder; secrets"
        " never go in the file: a key ending in `_env` names the environment variable that holds one."
        " `digest config check` prints the values in force, secrets masked.",
        "",
        "The subscriber CSV (`[subscribers] csv`) is re-imported on every run and send: new addresses"
        " are added; subscribers already known keep their status, so someone who unsubscribed is"
        " never re-added, and removing a row from the file does not unsubscribe anyone"
        " (use the unsubscribe link, or `digest subscribers export` to see the list in force).",
    ]
    for item in _walk(Settings, ""):
        if isinstance(item, tuple):
            table, meaning = item
            if not table:
                continue
            repeated = table.startswith("[")
            out += ["", f"## `[{table}]`" + (" (one table per item)" if repeated else "")]
            if meaning:
                out += ["", meaning]
            out += ["", "| key | type | default | meaning |", "|---|---|---|---|"]
            continue
        cell = item.meaning.replace("|", "\\|").replace("<", "\\<")
        out.append(f"| `{item.key}` | {item.type} | `{item.default}` | {cell} |".replace("`required`", "required"))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(config_reference(), end="")


_URL_PASSWORD = re.compile(r"(://[^/:@\s]+:)[^/@\s]+@")


def _masked(value: Any) -> str:
    if isinstance(value, SecretStr):
        return '"********" (set from the environment)'
    if isinstance(value, str):
        return _toml(_URL_PASSWORD.sub(r"\1********@", value))
    return _toml(value)


def _table_lines(model: BaseModel, table: str) -> list[str]:
    own: list[str] = []
    nested: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = f"{table}.{name}" if table else name
        if isinstance(value, BaseModel):
            nested += _table_lines(value, path)
        elif isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
            for item in value:
                nested += ["", f"[[{path}]]", *_table_lines(item, "")]
        elif value is not None and name != "config_path":
            own.append(f"{name} = {_masked(value)}")
    head = ["", f"[{table}]"] if table else []
    return [*head, *own, *nested] if own or not table else nested


def resolved_settings(settings: Settings) -> str:
    """The settings in force, as TOML: defaults filled in, paths resolved, secrets masked."""
    lines = [
        f"# {settings.config_path}: valid",
        f"# state database: {_masked(settings.state_url)}",
        *_table_lines(settings, ""),
    ]
    return "\n".join(lines).strip() + "\n"
