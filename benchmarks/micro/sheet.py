"""The report's contact sheet: what every generator drew for the same held-out poses, beside the mesh it
was given and a real photo of that pose. Numbers are read after looking (a sheet of identical textures
is a bug report, whatever the metrics say)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image

from handsynth.data import read_dataset
from handsynth.viz import contact_sheet

BLANK = Image.new("RGB", (8, 8), (40, 40, 40))  # a pose a set has no image for


def open_or_blank(path: Path) -> Image.Image:
    if not path.exists():
        return BLANK
    with Image.open(path) as im:
        return im.convert("RGB")


def _by_id(folder: Path) -> dict[str, Path]:
    if not (folder / "metadata.jsonl").exists():
        return {}
    return {s.id: folder / s.file_name for s in read_dataset(folder) if s.file_name}


def write_sheet(
    r,
    out: Path,
    methods: list[str],
    n: int = 8,
    seed: int = 0,
    poses: str = "lab_gen",
    refs: str = "wild_gen_ref",
    gen_dir: Callable[[str, int], Path] | None = None,
    prompt_file: Path | None = None,
) -> Path | None:
    """``n`` held-out poses (rows) × [mesh, real wild photo of the pose, each method's image] (columns).

    Generated images are matched to poses by record id (``handsynth generate`` keeps the pose's id); the
    oracle photos are the same poses re-rendered in wild (``refs``, same order as ``poses``). Defaults:
    Table 1's poses (``lab_gen``, ``wild_gen_ref``, ``r.gen_dir``, ``r.prompt_file``); Table 2's own
    poses pass theirs. Returns None when the poses are missing (nothing to show)."""
    pose_dir, ref_dir = r.data(poses), r.data(refs)
    gen_dir = gen_dir or r.gen_dir
    prompt_file = prompt_file or r.prompt_file
    if not (pose_dir / "metadata.jsonl").exists():
        return None
    poses_ = read_dataset(pose_dir)[:n]
    refs_ = read_dataset(ref_dir)[:n] if (ref_dir / "metadata.jsonl").exists() else []
    generated = {m: _by_id(gen_dir(m, seed)) for m in methods}
    prompts = prompt_file.read_text().splitlines() if prompt_file.exists() else []
    rows, captions = [], []
    for i, pose in enumerate(poses_):
        row = [open_or_blank(pose_dir / pose.conditions["mesh"]) if "mesh" in pose.conditions else BLANK]
        row.append(
            open_or_blank(ref_dir / refs_[i].file_name) if i < len(refs_) and refs_[i].file_name else BLANK
        )
        row += [open_or_blank(generated[m][pose.id]) if pose.id in generated[m] else BLANK for m in methods]
        rows.append(row)
        captions.append(prompts[i] if i < len(prompts) else pose.prompt)  # what the generators were asked
    titles = ["mesh", "real wild", *methods]  # the report's legend names each method key
    sheet = contact_sheet(rows, titles, captions, cell=96, caption_lines=1, title_lines=2)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
