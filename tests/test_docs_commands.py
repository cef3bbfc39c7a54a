"""The command lines in README.md and docs/*.md name sub-commands and flags that exist.

Every ``handsynth SUB ... --flag`` in a code block or inline code span is resolved with the real parser
(``handsynth.cli.build_parser``): each sub-command path must exist and each ``--flag`` after it must be
one of that sub-command's own option strings, spelled in full (argparse's prefix abbreviations and
deprecated spellings do not count). ``a|b`` in a sub-command position (``handsynth train|generate
--method X``) checks each alternative. The same holds for ``benchmarks/....py --flag``: the script must
exist and declare the flag (read from its ``add_argument`` calls, without importing the script).
"""

from __future__ import annotations

import argparse
import ast
import re
from functools import cache
from pathlib import Path

from docs_markdown import DOC_FILES, ROOT, Fragment, code_fragments
from handsynth.cli import build_parser  # the parser only: no torch

# A command starts a line or follows a prompt, a shell word or a quote; "than handsynth generates" in a
# quoted error message is prose.
HANDSYNTH = re.compile(r"(?<![\w./-])(?<![A-Za-z] )handsynth\s+|(?<=\btime )handsynth\s+")
SCRIPT = re.compile(r"(?<![\w./-])(benchmarks/[\w/]+\.py)\b")
# Where a command ends: a shell separator or comment, or an aside of the prose after an inline command.
END = re.compile(r"\s(?:&&|\|\||;|\||>|#)\s|\s#|;\s|$", re.MULTILINE)
COMMAND_WORD = re.compile(r"[a-z][a-z0-9-]*(?:\|[a-z][a-z0-9-]*)*")


def command_tokens(frag: Fragment, start: int) -> list[tuple[int, str]]:
    """The words of the command that starts at ``start`` in the fragment, with their line numbers."""
    rest = frag.text[start:]
    rest = rest[: END.search(rest.replace("\n", " ")).start()]
    # "\|" is a table cell's escaped "|"
    return [
        (frag.line_of(start + m.start()), m.group(0).replace("\\|", "|")) for m in re.finditer(r"\S+", rest)
    ]


def flag_names(token: str) -> list[str]:
    """The long options a word names: ``[--seed``, ``--size=512``, ``--rule|--other`` ..."""
    word = token.strip("[](),.;:`'\"")
    return [p.split("=", 1)[0] for p in word.split("|") if p.startswith("--") and len(p) > 2]


def sub_commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def flag_problem(parser: argparse.ArgumentParser, flag: str) -> str | None:
    action = parser._option_string_actions.get(flag)
    if action is None:
        return "no such flag"
    if type(action).__name__.startswith("Deprecated") and action.option_strings[0] != flag:
        return f"deprecated spelling of {action.option_strings[0]}"
    return None


def check_command(
    parser: argparse.ArgumentParser, path: list[str], tokens: list[tuple[int, str]]
) -> list[tuple[int, str]]:
    """(line, problem) for a command whose words after ``handsynth`` + ``path`` are ``tokens``."""
    subs = sub_commands(parser)
    if tokens and subs and COMMAND_WORD.fullmatch(tokens[0][1]):
        line, word = tokens[0]
        problems = []
        for alt in word.split("|"):
            if alt in subs:
                problems += check_command(subs[alt], [*path, alt], tokens[1:])
            else:
                name = " ".join(["handsynth", *path])
                problems.append((line, f"`{name}` has no sub-command {alt!r} (it has: {', '.join(subs)})"))
        return problems
    name = " ".join(["handsynth", *path])
    return [
        (line, f"`{name}` {flag}: {problem}")
        for line, token in tokens
        for flag in flag_names(token)
        if (problem := flag_problem(parser, flag))
    ]


@cache
def script_flags(script: str) -> frozenset[str]:
    """The option strings a benchmark script declares: every ``--x`` string in its ``add_argument``
    calls, and argparse's own ``--help``."""
    tree = ast.parse((ROOT / script).read_text(encoding="utf-8"))
    flags = {"--help"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            flags |= {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return frozenset(f for f in flags if f.startswith("--"))


def doc_problems(paths: list[Path]) -> list[str]:
    """One line per stale mention, ``file:line: what``, in the order of the files and lines."""
    root = build_parser()
    problems: list[tuple[int, int, str]] = []  # (file, line, message)
    for k, path in enumerate(paths):
        for frag in code_fragments(path):
            found = []
            for m in HANDSYNTH.finditer(frag.text):
                found += check_command(root, [], command_tokens(frag, m.end()))
            for m in SCRIPT.finditer(frag.text):
                script = m.group(1)
                if not (ROOT / script).is_file():
                    found.append((frag.line_of(m.start()), f"{script} does not exist"))
                    continue
                found += [
                    (line, f"`{script}` {flag}: no such flag")
                    for line, token in command_tokens(frag, m.end())
                    for flag in flag_names(token)
                    if flag not in script_flags(script)
                ]
            problems += [(k, line, f"{frag.where}:{line}: {what}") for line, what in found]
    return [message for *_, message in sorted(problems)]


def test_documented_commands_and_flags_exist():
    problems = doc_problems(DOC_FILES)
    assert not problems, "stale command lines in the docs:\n" + "\n".join(problems)


def test_the_check_sees_stale_mentions(tmp_path):
    """The check finds what it is for (a fenced line with a continuation, an inline span over a line
    break, an indented block, alternatives, a script, a deprecated spelling) and passes what is right."""
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Intro `time handsynth render --in DIR\n--no-such-a` and `handsynth poses views|nope --n-per-pose 3`.\n\n"
        "    handsynth filter --in gen/ [--preset dexycb --no-such-b]\n\n"
        "```bash\n"
        "handsynth recon train --in a \\\n"
        "    --out b --no-such-c   # comment --not-a-flag\n"
        "handsynth render --in x --maps mesh --siz 512 && echo --fine\n"
        "python benchmarks/micro/run.py --profile full --no-such-d\n"
        "python benchmarks/no_such_script.py --x\n"
        "handsynth world render --domain lab --n 6 --out /tmp/lab\n"
        "$ handsynth demo --out d  # than handsynth nope --z: prose\n"
        "handsynth train --method attentionhand --data d\n"
        "```\n",
        encoding="utf-8",
    )
    problems = doc_problems([doc])
    poses = ", ".join(sub_commands(sub_commands(build_parser())["poses"]))
    assert problems == [
        f"doc.md:2: `handsynth poses` has no sub-command 'nope' (it has: {poses})",
        "doc.md:2: `handsynth render` --no-such-a: no such flag",
        "doc.md:4: `handsynth filter` --no-such-b: no such flag",
        "doc.md:8: `handsynth recon train` --no-such-c: no such flag",
        "doc.md:9: `handsynth render` --siz: no such flag",
        "doc.md:10: `benchmarks/micro/run.py` --no-such-d: no such flag",
        "doc.md:11: benchmarks/no_such_script.py does not exist",
        "doc.md:14: `handsynth train` --data: deprecated spelling of --in",
    ]
