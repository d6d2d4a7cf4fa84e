"""The one schema layer: every configuration file the project reads is a pydantic model.

A model gives the defaults, the checks, the error messages and a JSON Schema for editors
from one source. This module turns pydantic's errors into the project's form, which names
the file, the entry and the field, because the reader is the person who just edited it:

    suites.yaml: suites[0] 'delays': field 'repositories[1].url': missing; it is required

It imports no pattern and no Dagster, so a client or kernel that reads a file stays light.
"""

from __future__ import annotations

import json
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class ConfigError(ValueError):
    """A configuration file is wrong. The message names the file, the entry and the field."""


class StrictModel(BaseModel):
    """A section of a configuration file: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def read_yaml(path: Path | str, error: type[ConfigError] = ConfigError) -> Any:
    return _read(Path(path), yaml.safe_load, yaml.YAMLError, "YAML", error)


def read_toml(path: Path | str, error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    return _read(Path(path), tomllib.loads, tomllib.TOMLDecodeError, "TOML", error)


def _read(path: Path, load: Any, syntax_error: type[Exception], kind: str, error: type[ConfigError]) -> Any:
    try:
        return load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise error(f"{path}: file not found") from exc
    except syntax_error as exc:
        raise error(f"{path}: not valid {kind}: {exc}") from exc


def parse(
    model: type[M],
    raw: Any,
    source: Path | str,
    *,
    entry_depth: int = 2,
    error: type[ConfigError] = ConfigError,
    context: Mapping[str, Any] | None = None,
) -> M:
    """Validate `raw` (a file's parsed content) as `model`, or raise `error` naming the place.

    `entry_depth` is how many leading parts of an error's location name the entry: 2 for a
    file of named entries (`exports[3]`, `connections 'source'`), 0 for a flat file.
    """
    try:
        return model.model_validate(raw, context=dict(context or {}))
    except ValidationError as exc:
        lines = [_describe(item, raw, source, model, entry_depth) for item in exc.errors()]
        raise error("\n".join(dict.fromkeys(lines))) from None


def json_schema(model: type[BaseModel], title: str, description: str) -> dict[str, Any]:
    """The JSON Schema an editor validates the file with (VS Code, any YAML language server)."""
    schema = model.model_json_schema(mode="validation")
    return {"$schema": JSON_SCHEMA_DIALECT, "title": title, "description": description, **schema}


def schema_text(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _describe(
    item: Mapping[str, Any], raw: Any, source: Path | str, model: type[BaseModel], depth: int
) -> str:
    loc = tuple(item.get("loc", ()))
    if len(loc) < depth or (len(loc) == depth and item["type"] == "missing"):
        entry_loc, field_loc = (), loc
    elif len(loc) == depth:
        entry_loc, field_loc = loc, ()
    else:
        entry_loc, field_loc = loc[:depth], loc[depth:]
    where = [str(source)]
    if entry_loc:
        where.append(_entry_label(entry_loc, raw))
    if field_loc:
        where.append(f"field '{_dotted(field_loc)}'")
    return f"{': '.join(where)}: {_message(item, model, loc)}"


def _entry_label(loc: tuple, raw: Any) -> str:
    label = ""
    node = raw
    for part in loc:
        label += f"[{part}]" if isinstance(part, int) else (f" '{part}'" if label else str(part))
        node = node[part] if isinstance(node, (Mapping, list)) and _has(node, part) else None
    name = node.get("name") if isinstance(node, Mapping) else None
    return f"{label} '{name}'" if isinstance(name, str) and name and f"'{name}'" not in label else label


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, list):
        return isinstance(part, int) and 0 <= part < len(node)
    return part in node


def _dotted(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(item: Mapping[str, Any], model: type[BaseModel], loc: tuple) -> str:
    kind = item["type"]
    if kind == "missing":
        return "missing; it is required"
    if kind == "extra_forbidden":
        known = _known_fields(model, loc[:-1])
        return f"unknown field; known fields: {known}" if known else "unknown field"
    message = str(item["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind.startswith(("literal_error", "enum")) or "value_error" in kind:
        return message
    value = item.get("input")
    if isinstance(value, (Mapping, list)) or not message:
        return message
    return f"{value!r}: {message[0].lower()}{message[1:]}"


def _known_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """The fields allowed where an unknown key appeared, found by walking the model."""
    annotation: Any = model
    for part in loc:
        found = _model_in(annotation)
        if isinstance(part, str) and found is not None and part in found.model_fields:
            annotation = found.model_fields[part].annotation
        elif isinstance(part, str) and _mapping_value(annotation) is not None:
            annotation = _mapping_value(annotation)
        elif not isinstance(part, int):
            return []
    found = _model_in(annotation)
    return sorted(field.alias or name for name, field in found.model_fields.items()) if found else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds: itself, or inside Optional, list, tuple or dict values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = typing.get_args(_mapping_value(annotation) or annotation)
    for arg in args if typing.get_origin(annotation) is not None else ():
        found = _model_in(arg)
        if found is not None:
            return found
    return _model_in(_mapping_value(annotation)) if _mapping_value(annotation) is not None else None


def _mapping_value(annotation: Any) -> Any:
    """The value type of a dict or Mapping annotation (also inside Optional), else None."""
    origin = typing.get_origin(annotation)
    if origin in (dict, Mapping):
        return typing.get_args(annotation)[1]
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            value = _mapping_value(arg)
            if value is not None:
                return value
    return None
