"""Reading the code out of the project's Markdown: shared by the docs tests (tests/test_docs_*.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
INLINE_CODE = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.DOTALL)
MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Fragment:
    """A piece of code in a doc: ``text`` starts on ``line`` (1-based); its own line breaks are kept so
    that a position in it maps back to a line."""

    path: Path
    line: int
    text: str

    def line_of(self, pos: int) -> int:
        return self.line + self.text.count("\n", 0, pos)

    @property
    def where(self) -> str:
        return str(self.path.relative_to(ROOT)) if self.path.is_relative_to(ROOT) else self.path.name


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, first code line (1-based), text and the snippet marker (the
    ``<!-- snippet: ... -->`` comment on the line above its fence, if any)."""

    path: Path
    lang: str
    line: int
    text: str
    marker: str | None


def fenced_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, j = m.group(1), i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        marker = MARKER.match(prev)
        blocks.append(Block(path, m.group(2), i + 2, "\n".join(lines[i + 1 : j]), marker and marker.group(1)))
        i = j + 1
    return blocks


def _joined(start: int, lines: list[str]) -> list[tuple[int, str]]:
    """Code lines as (line number, text), a line ending in a backslash joined with the next (the line
    break kept, the backslash dropped)."""
    out, i = [], 0
    while i < len(lines):
        first, text = start + i, lines[i]
        while text.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text.rstrip()[:-1] + "\n" + lines[i]
        out.append((first, text))
        i += 1
    return out


def code_fragments(path: Path) -> list[Fragment]:
    """Every piece of code in a Markdown file: each line of a fenced or indented code block (with its
    backslash continuations) and each inline code span (which may run over a line break)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    prose = list(lines)  # the lines outside code blocks; code-block lines blanked
    fragments: list[Fragment] = []
    for block in fenced_blocks(path):
        body = block.text.splitlines()
        fragments += [Fragment(path, n, t) for n, t in _joined(block.line, body)]
        for k in range(block.line - 2, min(block.line + len(body), len(lines))):
            prose[k] = ""
    i = 0
    while i < len(prose):  # indented code blocks: after a blank line, 4+ spaces, no inline code
        if prose[i].startswith("    ") and "`" not in prose[i] and (i == 0 or not prose[i - 1].strip()):
            j = i
            while j < len(prose) and prose[j].startswith("    "):
                j += 1
            fragments += [Fragment(path, n, t) for n, t in _joined(i + 1, prose[i:j])]
            prose[i:j] = [""] * (j - i)
            i = j
        else:
            i += 1
    text = "\n".join(prose)
    for para in re.finditer(r"(?:[^\n]+\n?)+", text):  # paragraphs: a stray backtick stays in its own
        first = text.count("\n", 0, para.start()) + 1
        for m in INLINE_CODE.finditer(para.group(0)):
            line = first + para.group(0).count("\n", 0, m.start(2))
            fragments.append(Fragment(path, line, m.group(2)))
    return fragments
