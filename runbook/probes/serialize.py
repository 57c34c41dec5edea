"""A ProbeReport as plain JSON-ready data and back (the labeled corpus keeps one per case).

:func:`report_to_dict` turns the report and every nested result into dicts, lists, strings and
numbers (enums by value, tuples as lists, dict keys as strings); :func:`report_from_dict`
rebuilds the same dataclasses from the field types declared in ``runbook.observations`` (enums,
tuples and integer dict keys restored). The one thing that does not come back is response header
*values*: they are never written (a header can carry a cookie or a token), so headers come back
as ``(name, "")`` pairs. Raises ValueError naming the field for data that does not fit.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

from runbook.observations import HandshakeResult, ProbeReport

# Fields whose values are never written; only the names of their (name, value) pairs are kept.
_NAMES_ONLY = {(HandshakeResult, "headers")}


def report_to_dict(report: ProbeReport) -> dict[str, Any]:
    """``report`` as JSON-ready data (see the module docstring); header values left out."""
    return _dump(report)


def report_from_dict(data: dict[str, Any]) -> ProbeReport:
    """The ProbeReport that :func:`report_to_dict` wrote; ValueError when ``data`` does not fit."""
    if not isinstance(data, dict):
        raise ValueError(f"a probe report must be a JSON object, got {type(data).__name__}")
    return _load(ProbeReport, data, "report")


def _dump(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for item in dataclasses.fields(value):
            field_value = getattr(value, item.name)
            if (type(value), item.name) in _NAMES_ONLY:
                out[item.name] = [name for name, _value in field_value]
            else:
                out[item.name] = _dump(field_value)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_dump(item) for item in value]
    if isinstance(value, dict):
        return {str(key.value if isinstance(key, enum.Enum) else key): _dump(item)
                for key, item in value.items()}
    return value


def _load(kind: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if data is None:
            return None
        if len(options) == 1:
            return _load(options[0], data, where)
        for option in options:  # e.g. bool | callable: take the first that fits
            try:
                return _load(option, data, where)
            except (ValueError, TypeError):
                continue
        raise ValueError(f"{where}: {data!r} fits none of {kind}")
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        hints = typing.get_type_hints(kind)
        values = {}
        for item in dataclasses.fields(kind):
            if item.name not in data:
                continue  # the dataclass default applies (older files)
            if (kind, item.name) in _NAMES_ONLY:
                values[item.name] = tuple((str(name), "") for name in data[item.name])
            else:
                values[item.name] = _load(hints[item.name], data[item.name], f"{where}.{item.name}")
        try:
            return kind(**values)
        except TypeError as error:
            raise ValueError(f"{where}: {error}") from None
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(data)
        except ValueError:
            raise ValueError(f"{where}: {data!r} is not a {kind.__name__}") from None
    if origin is tuple:
        args = typing.get_args(kind)
        if not isinstance(data, list):
            raise ValueError(f"{where}: expected a list, got {type(data).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_load(args[0], item, f"{where}[{i}]") for i, item in enumerate(data))
        return tuple(_load(arg, item, f"{where}[{i}]") for i, (arg, item) in enumerate(zip(args, data, strict=True)))
    if origin is list:
        (arg,) = typing.get_args(kind)
        return [_load(arg, item, f"{where}[{i}]") for i, item in enumerate(data)]
    if origin is dict:
        key_type, value_type = typing.get_args(kind)
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        return {_load(key_type, key if key_type is str else _number(key, where), f"{where} key"):
                _load(value_type, item, f"{where}[{key}]") for key, item in data.items()}
    if kind is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise ValueError(f"{where}: expected a number, got {data!r}")
        return float(data)
    if kind in (int, str, bool):
        if not isinstance(data, kind) or (kind is int and isinstance(data, bool)):
            raise ValueError(f"{where}: expected {kind.__name__}, got {data!r}")
        return data
    if kind is Any:
        return data
    raise ValueError(f"{where}: cannot restore a value of type {kind}")


def _number(key: str, where: str) -> int:
    try:
        return int(key)
    except ValueError:
        raise ValueError(f"{where}: key {key!r} is not a number") from None


__all__ = ["report_from_dict", "report_to_dict"]
