"""The ``handsynth`` command.

Each stage owns its sub-commands in a ``cli.py`` module exposing ``register(subparsers)``; this file
only collects them, so stages never edit each other's command code.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import logging
import sys

from handsynth.cli_common import CommandParser
from handsynth.errors import UserError

# Stage modules that contribute sub-commands, in the order they appear in ``--help``.
COMMAND_MODULES = [
    "handsynth.hand.cli",  # mano convert, poses sample
    "handsynth.poses.cli",  # poses grasp-status, fps, cross-sample, views, rest, align, compose (after hand.cli: same poses command)
    "handsynth.data.cli",  # prepare (dataset importers)
    "handsynth.render.cli",  # render
    "handsynth.text.cli",  # tag, caption, prompts
    "handsynth.world.cli",  # world render
    "handsynth.methods.cli",  # train
    "handsynth.generate.cli",  # generate
    "handsynth.eval.cli",  # evaluate, study
    "handsynth.recon.cli",  # recon, filter
    "handsynth.demo",  # demo
]


def version() -> str:
    """The installed distribution's version (the source tree's when run from a checkout)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    import handsynth

    try:
        return dist_version("handsynth")
    except PackageNotFoundError:
        return handsynth.__version__


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="handsynth",
        description="Photo-realistic hand images with exact 3D labels (AttentionHand, HandBooster, SesaHand).",
    )
    parser.add_argument("--version", action="version", version=f"handsynth {version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # Sub-commands (and theirs) are built with CommandParser: defaults shown in every --help.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:
            continue  # stage not built yet
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed its one-line error (or --help): same exit code, no raise
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except UserError as err:
        print(f"handsynth: error: {user_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: every command keeps its finished work (records are whole or absent)
        if args.verbose:
            raise
        print(
            "handsynth: interrupted; rerun the same command to continue (finished work is kept)",
            file=sys.stderr,
        )
        return 130
    except OSError as err:  # a path the user named cannot be used: one sentence, not a traceback
        if args.verbose:
            raise
        print(f"handsynth: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    return int(result or 0)


def user_message(err: UserError) -> str:
    """The error's sentence; a UserError raised in a torch DataLoader worker comes back with the worker's
    traceback folded into its message ("Caught UserError in DataLoader worker process 0. Original
    Traceback ..."): only the original sentence is kept."""
    text = str(err)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = text.rstrip().splitlines()[-1]  # "package.module.SomeError: the sentence"
        name, sep, sentence = last.partition(": ")
        return sentence if sep and " " not in name else last
    return text


OS_ERROR_HINTS = {
    errno.EACCES: "permission denied; check the permissions or choose another folder",
    errno.EPERM: "operation not permitted; check the permissions or choose another folder",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.ENOSPC: "no space left on the device; free some space and rerun (finished work is kept)",
    errno.ENOTDIR: "a file stands where a folder is needed; choose another path",
    errno.EEXIST: "a file stands where a folder is needed; choose another path",
    errno.EISDIR: "is a folder where a file is needed; choose another path",
    errno.ENOENT: "no such file or folder",
}


def describe_os_error(err: OSError) -> str:
    """One sentence for an operating-system error: the path involved and what to do about it."""
    what = OS_ERROR_HINTS.get(err.errno or -1, err.strerror or type(err).__name__)
    path = err.filename if err.filename is not None else ""
    return f"{path}: {what}" if path else f"{what} ({err})"


if __name__ == "__main__":
    sys.exit(main())
