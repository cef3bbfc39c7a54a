"""What every ``handsynth`` sub-command's parser shares: defaults in ``--help``, deprecated aliases.

The top-level parser hands :class:`CommandParser` to ``add_subparsers``; argparse builds nested
sub-commands with the parent's class, so every command gets the same help formatting without each
stage's ``cli.py`` asking for it.
"""

from __future__ import annotations

import argparse
import copy
import sys
from typing import Any


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after every option's help, except where nothing useful would be shown:
    flags (False), unset options (None) and help texts that already name their default."""

    @staticmethod
    def _shows_default(action: argparse.Action) -> bool:
        # identity, not ==: 0 == False, and a default of 0 (a seed, a start index) is worth showing
        d = action.default
        return bool(action.option_strings) and not (d is None or d is False or d is argparse.SUPPRESS)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not self._shows_default(action) or "default" in text:
            return text
        return super()._get_help_string(action)

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self._shows_default(action):  # an option with no help text still shows it
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose help shows defaults (and whose sub-commands inherit that)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def add_deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Make ``new`` the option's name and ``old`` a second, deprecated spelling of it (same action, same
    checks) that warns on use. Works whichever of the two the option was declared with."""
    action = next(a for a in parser._actions if new in a.option_strings or old in a.option_strings)
    action.option_strings = [new] + [o for o in action.option_strings if o not in (new, old)] + [old]
    parser._option_string_actions[new] = parser._option_string_actions[old] = action
    action.help = f"{action.help or ''} ({old}: deprecated spelling of {new})".strip()
    if action.metavar is None and action.nargs != 0:
        action.metavar = new.lstrip("-").replace("-", "_").upper()
    base = type(action)

    def call(self, parser, namespace, values, option_string=None):
        if option_string == old:
            print(f"handsynth: warning: {old} is deprecated; use {new} (same meaning)", file=sys.stderr)
        base.__call__(self, parser, namespace, values, option_string)

    action.__class__ = type(f"Deprecated{base.__name__}", (base,), {"__call__": call})
