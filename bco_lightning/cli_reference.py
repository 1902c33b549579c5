"""The command-line reference (docs/cli.md), built from the real parsers of `bco_lightning.cli`.

    python -m bco_lightning.cli_reference > docs/cli.md

Each command gets a table of its options (flag, type, default, help) read from the parser's
jsonargparse actions, so the page says what `bco COMMAND --help` says: help text of class
arguments comes from the docstrings jsonargparse parses. The output is deterministic: no absolute
paths and nothing that depends on the machine (a default that would is refused, see
`SOURCE_DEFAULTS`). `tests/test_docs.py` checks that docs/cli.md is current.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

from jsonargparse import ActionConfigFile, ArgumentParser

REGENERATE = "python -m bco_lightning.cli_reference > docs/cli.md"
NOTES = Path(__file__).resolve().parents[1] / "docs" / "cli-notes.md"
"""Prose about the command line (a checkout's docs/cli-notes.md), included after the intro when it exists."""

# Defaults that depend on the machine are written as their literal source default instead, keyed
# `COMMAND:dest` (none today: `render_cli_reference` refuses one that is not listed here).
SOURCE_DEFAULTS: dict[str, str] = {}

# The nested groups' classes, for groups jsonargparse does not name (the trainer's, made with instantiate=False).
GROUP_CLASS = {"data": "BCODataModule", "idm": "IDMModule", "policy": "BCPolicyModule", "trainer": "pytorch_lightning.Trainer"}


def command_parsers() -> dict[str, ArgumentParser]:
    """`bco COMMAND`'s parser for each command with its own parser, in the order `bco --help` lists them."""
    from bco_lightning.cli import PARSERS

    return {name: make() for name, make in PARSERS.items()}


def _type_name(hint: Any) -> str:
    """A type hint as a user reads it: `int | None`, `list[int]`, `"idm" | "true_actions"`."""
    if hint is None or hint is type(None):
        return "None"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        names: list[str] = []
        for arg in args:
            for name in _type_name(arg).split(" | "):
                if name not in names:
                    names.append(name)
        if "None" in names:  # Optional: None last
            names = [name for name in names if name != "None"] + ["None"]
        return " | ".join(names)
    if origin is Literal:
        return " | ".join(json.dumps(arg) for arg in args)
    if origin is not None:
        base = getattr(origin, "__name__", str(origin).replace("typing.", ""))
        return f"{base}[{', '.join(_type_name(arg) for arg in args)}]" if args else base
    if hint is typing.Any:
        return "Any"
    if hint is Ellipsis:
        return "..."
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _value(value: Any) -> str:
    """A default as it is written on the command line or in a YAML config."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, datetime.timedelta):
        return str(value)
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


def _machine_specific(text: str) -> bool:
    here, home = os.getcwd(), os.path.expanduser("~")
    return text.startswith("/") or (len(here) > 1 and here in text) or (len(home) > 1 and home in text) or re.match(r"^[A-Za-z]:\\", text) is not None


def _cell(text: str) -> str:
    """One table cell: one line, `|` escaped (GitHub reads `\\|` as `|`, inside code spans too)."""
    return " ".join(text.split()).replace("|", "\\|")


def _help(action: argparse.Action) -> str:
    text = action.help if isinstance(action.help, str) and action.help != argparse.SUPPRESS else ""
    return re.sub(r":(?:class|func|meth|attr|mod|obj|paramref|ref):(?=`)", "", text)  # Sphinx roles of Lightning's docstrings


def _row(command: str, action: argparse.Action) -> str:
    flag = action.option_strings[0]
    hint = getattr(action, "_typehint", None)
    if isinstance(action, ActionConfigFile) or type(action).__name__ == "_ActionConfigLoad":
        type_name = "path"  # a YAML file (or, for --config, the name of a shipped config)
    elif type(action).__name__ == "_ActionPrintConfig":
        type_name = ""  # a flag, or `--print_config=skip_default,...`
    elif hint is not None:
        type_name = _type_name(hint)
    elif action.type is not None:
        type_name = _type_name(action.type)
    else:
        type_name = ""
    if action.required:
        default = "*required*"
    elif action.default is None and hint is None or action.default == argparse.SUPPRESS:
        default = ""
    else:
        value = SOURCE_DEFAULTS.get(f"{command}:{action.dest}", _value(action.default))
        if f"{command}:{action.dest}" not in SOURCE_DEFAULTS and _machine_specific(value):
            raise ValueError(
                f"bco {command} {flag}: the default {value!r} depends on this machine; add its literal source default "
                f"to SOURCE_DEFAULTS in {Path(__file__).name}"
            )
        default = f"`{_cell(value)}`" if value else '`""`'
    type_cell = f"`{_cell(type_name)}`" if type_name else ""
    return f"| `{flag}` | {type_cell} | {default} | {_cell(_help(action))} |"


def _listed(action: argparse.Action) -> bool:
    """An option of its own: not --help, not a link's target, not `--X.help` (a class's own help)."""
    name = type(action).__name__
    return bool(action.option_strings) and not isinstance(action, argparse._HelpAction) and name not in ("ActionLink", "_ActionHelpClassPath")


def _table(command: str, actions: list[argparse.Action]) -> list[str]:
    return ["| flag | type | default | help |", "| --- | --- | --- | --- |", *(_row(command, action) for action in actions)]


def _group_prefix(actions: list[argparse.Action]) -> str | None:
    """`data` when every option of a group is `--data` or `--data.NAME`."""
    prefixes = {action.dest.split(".")[0] for action in actions}
    return prefixes.pop() if len(prefixes) == 1 and any("." in action.dest for action in actions) else None


def render_command(command: str, parser: ArgumentParser) -> list[str]:
    lines = [f"## `bco {command}`", ""]
    for paragraph in (parser.description or "").strip().split("\n\n"):
        if paragraph.strip():
            lines += [" ".join(paragraph.split()), ""]
    groups = [(group, [action for action in group._group_actions if _listed(action)]) for group in parser._action_groups]
    groups = [(group, actions) for group, actions in groups if actions]
    if len(groups) == 1:
        return [*lines, *_table(command, groups[0][1]), ""]
    for group, actions in groups:
        prefix = _group_prefix(actions)
        if prefix is None:
            lines += ["### Options", ""]
        else:
            owner = getattr(getattr(group, "group_class", None), "__name__", None) or GROUP_CLASS.get(prefix, "")
            lines += [f"### `--{prefix}.*`" + (f" ({owner})" if owner else ""), ""]
            if group.title:
                lines += [" ".join(group.title.split()) + ".", ""]
        lines += [*_table(command, actions), ""]
    linked = [action.dest for action in parser._actions if type(action).__name__ == "ActionLink"]
    if linked:
        lines += [
            "Not flags: " + ", ".join(f"`{dest}`" for dest in linked)
            + " are set from the datamodule (`--data.env_id` and `--data.env_kwargs` decide them).",
            "",
        ]
    return lines


def render_cli_reference(notes: Path | None = NOTES) -> str:
    """docs/cli.md: a generated-file comment, an intro (the subcommands), `notes` verbatim if that
    file exists, then one section per command with a table of its options."""
    from bco_lightning.cli import STAGE_SUBCOMMANDS, USAGE

    parsers = command_parsers()
    lines = [
        f"<!-- Generated from the parsers in bco_lightning/cli.py; do not edit. Regenerate: {REGENERATE} -->",
        "",
        "# Command-line reference",
        "",
        "`bco` has these subcommands (`bco --help`):",
        "",
        "```text",
        *USAGE.strip("\n").splitlines(),
        "```",
        "",
        "Below, every option of " + ", ".join(f"`bco {name}`" for name in parsers) + ", as `--help` gives it. "
        + "/".join(STAGE_SUBCOMMANDS) + " take LightningCLI's options (`bco fit --help`). "
        "A default in a table is written as on the command line or in a YAML config (`null`, `true`, `[256, 256]`).",
        "",
    ]
    text = "\n".join(lines) + "\n"
    if notes is not None and notes.is_file():
        text += notes.read_text().rstrip("\n") + "\n\n"
    sections = [line for command, parser in parsers.items() for line in render_command(command, parser)]
    return text + "\n".join(sections).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> None:
    if sys.argv[1:] if argv is None else argv:
        print(f"usage: {REGENERATE}", file=sys.stderr)
        sys.exit(2)
    sys.stdout.write(render_cli_reference())


if __name__ == "__main__":
    main()
