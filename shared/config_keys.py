"""Where a config error points: the setting's key path in a model, the environment variable that set
it, and the key an unknown one was probably meant to be."""

from __future__ import annotations

import difflib
import os
import types
from collections.abc import Mapping, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from shared.errors import ConfigIssue

Loc = Sequence[int | str]
# A key at least this similar to a known one is suggested (difflib's ratio; 0.6 is its default and
# catches one or two wrong letters in a short name, e.g. brokr → broker).
SUGGEST_CUTOFF = 0.6
# How an issue's key says an environment variable set it.
ENV_MARK = "(environment variable"


def _unwrapped(annotation: Any) -> list[Any]:
    """The types a field holds, Optional and unions opened."""
    if get_origin(annotation) in (Union, types.UnionType):
        return [t for arg in get_args(annotation) for t in _unwrapped(arg)]
    return [annotation]


def _child(annotation: Any) -> tuple[Any, bool] | None:
    """What lies one key below a value of this type: (type, whether that key is free, as in a dict)."""
    for kind in _unwrapped(annotation):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind, False
        if get_origin(kind) in (dict, Mapping, list, tuple) and get_args(kind):
            return get_args(kind)[-1] if get_origin(kind) in (dict, Mapping) else get_args(kind)[0], True
    return None


def fields_at(model: type[BaseModel], loc: Loc) -> list[str] | None:
    """The keys a mapping at `loc` (inside `model`) may hold, or None where any key goes or the path
    leads nowhere known."""
    current: Any = model
    free = False
    for part in loc:
        if free:
            free = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        below = _child(field.annotation)
        if below is None:
            return None
        current, free = below
    if free or not (isinstance(current, type) and issubclass(current, BaseModel)):
        return None
    return list(current.model_fields)


def closest(word: str, known: Sequence[str]) -> str | None:
    """The known key nearest to `word`, if one is near enough to be what was meant."""
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=SUGGEST_CUTOFF)
    return lowered[close[0]] if close else None


def _suggest(near: str | None) -> str:
    return f"; did you mean {near!r}?" if near else ""


def issue_for(model: type[BaseModel], err: ErrorDetails, env_prefix: str | None = None) -> ConfigIssue:
    """One pydantic error as a ConfigIssue: keyed by the environment variable where one set the value,
    else by the dotted key; an unknown key gets the nearest known one suggested."""
    loc = err["loc"]
    key = ".".join(str(p) for p in loc)
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden" and loc:
        known = fields_at(model, loc[:-1])
        message = "unknown setting" + _suggest(closest(str(loc[-1]), known) if known else None)
    variable = env_prefix and _variable_for(env_prefix, loc)
    if variable:
        return ConfigIssue(f"{variable} {ENV_MARK}, sets {key})", message)
    return ConfigIssue(key, message)


def _variable_for(prefix: str, loc: Loc) -> str | None:
    """The environment variable that set the value at `loc` (or the mapping holding it), if any."""
    names = {name.upper(): name for name in os.environ}
    for depth in range(len(loc), 0, -1):
        wanted = (prefix + "__".join(str(p) for p in loc[:depth])).upper()
        if wanted in names:
            return names[wanted]
    return None


def unknown_variables(model: type[BaseModel], prefix: str) -> list[ConfigIssue]:
    """Environment variables with the model's prefix that name no setting: pydantic-settings ignores
    them, so a misspelt override would silently not apply."""
    issues = []
    for name in sorted(os.environ):
        if not name.upper().startswith(prefix.upper()):
            continue
        parts = name[len(prefix) :].lower().split("__")
        for depth, part in enumerate(parts):
            known = fields_at(model, parts[:depth])
            if known is None:
                break
            if part not in known:
                near = closest(part, known)
                meant = near and (prefix + "__".join([*parts[:depth], near, *parts[depth + 1 :]])).upper()
                issues.append(ConfigIssue(f"{name} {ENV_MARK})", "names no setting" + _suggest(meant)))
                break
    return issues
