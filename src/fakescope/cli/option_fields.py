"""Command-line options generated from the option dataclasses of ``fakescope.options``, so that a flag's default,
type and choices are those of its field, and the values parsed become the same dataclasses again."""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

from ..options import SELECTION, positive_float, positive_int
from ..video import FrameSelection

Options = TypeVar("Options")
Groups = dict[str, Any]  # group title -> argparse argument group (or the parser itself for "")


def _fields(concern: type, only: Iterable[str] | None) -> list[dataclasses.Field]:
    fields = [f for f in dataclasses.fields(concern) if f.metadata.get("cli", False)]
    if only is None:
        return fields
    wanted = list(only)
    unknown = set(wanted) - {f.name for f in fields}
    if unknown:
        raise ValueError(f"{concern.__name__} has no command-line field {', '.join(sorted(unknown))}")
    return [f for f in fields if f.name in wanted]


def flag_of(field: dataclasses.Field) -> str:
    """The field's flag: its metadata's, else ``--name`` (``--no-name`` for a boolean that defaults to true)."""
    if field.metadata.get("flag"):
        return field.metadata["flag"]
    name = field.name.replace("_", "-")
    if field.default is True and not field.metadata.get("negatable"):
        return f"--no-{name}"
    return f"--{name}"


def _group(parser: argparse.ArgumentParser, groups: Groups, title: str) -> Any:
    if not title:
        return parser
    if title not in groups:
        groups[title] = parser.add_argument_group(title)
    return groups[title]


def add_options(
    parser: argparse.ArgumentParser,
    concern: type,
    groups: Groups,
    defaults: Any = None,
    only: Iterable[str] | None = None,
) -> None:
    """Add the command-line fields of dataclass ``concern`` to ``parser``, each in the group its metadata names
    (shared through ``groups``), with the defaults of ``defaults`` (an instance; default: the dataclass's own)."""
    defaults = defaults if defaults is not None else concern()
    for field in _fields(concern, only):
        meta = field.metadata
        default = getattr(defaults, field.name)
        title = meta["group"]
        if meta["kind"] == SELECTION:
            title = f"{title} (default: {default.describe()})"
        group = _group(parser, groups, title)
        if meta["kind"] == SELECTION:
            _add_selection(group, default)
            continue
        kwargs: dict[str, Any] = {"dest": field.name, "default": default, "help": meta["help"]}
        if isinstance(default, bool):
            if meta["negatable"]:
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs["action"] = "store_false" if default else "store_true"
        else:
            if meta["type"] is not None:
                kwargs["type"] = meta["type"]
            if meta["choices"] is not None:
                kwargs["choices"] = list(meta["choices"])
            if meta["metavar"] is not None:
                kwargs["metavar"] = meta["metavar"]
        group.add_argument(flag_of(field), **kwargs)


def _add_selection(group: Any, default: FrameSelection) -> None:
    """--every N | --frames N | --fps F, one at most; none given means ``default``."""
    choice = group.add_mutually_exclusive_group()
    choice.add_argument("--every", type=positive_int, metavar="N", help="analyse every Nth frame")
    choice.add_argument("--frames", type=positive_int, metavar="N", help="analyse N evenly spaced frames")
    choice.add_argument("--fps", type=positive_float, metavar="F", help="analyse F frames per second")
    group.set_defaults(selection=default)


def options_from_args(concern: type[Options], args: argparse.Namespace, defaults: Any = None,
                      only: Iterable[str] | None = None) -> Options:
    """The ``concern`` dataclass with the values parsed into ``args`` (fields not on the command line: from
    ``defaults``, else the dataclass's own)."""
    values = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(concern)} if defaults is not None else {}
    for field in _fields(concern, only):
        if field.metadata["kind"] == SELECTION:
            given = any(getattr(args, name, None) is not None for name in ("every", "frames", "fps"))
            values[field.name] = (FrameSelection.from_options(every=args.every, frames=args.frames, fps=args.fps)
                                  if given else args.selection)
        else:
            values[field.name] = getattr(args, field.name)
    return concern(**values)
