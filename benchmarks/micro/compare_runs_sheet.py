"""Two finished micro runs side by side: the first images each method generated, one row per run.

Why: a change to the world or a trainer shows first in the pictures (run6's inside crops removed the
frames that run5's shared-weight AttentionHand modules drew); rows of the same method and seed from two
runs, same poses and prompts, make that visible at a glance.

    python benchmarks/micro/compare_runs_sheet.py RUN_A/outputs/micro/full RUN_B/outputs/micro/full \
        --labels run5 run6 --out benchmarks/results/micro_run5_run6_sheet.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

METHODS = (
    "controlnet",
    "attentionhand",
    "ah_local",
    "ah_notas",
    "ah_infer_local",
    "ah_infer_tas",
    "ah_separate",
    "uni_controlnet",
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("works", nargs=2, type=Path, help="two finished runs' work folders")
    p.add_argument("--labels", nargs=2, default=["A", "B"], help="row labels of the two runs")
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--n", type=int, default=12, help="images per row (default 12)")
    p.add_argument("--seed", type=int, default=0, help="generation seed folder (default 0)")
    p.add_argument("--out", type=Path, required=True, help="the sheet (png)")
    a = p.parse_args(argv)
    rows = []
    for m in a.methods:
        for work, label in zip(a.works, a.labels):
            folder = work / "gen" / m / f"seed{a.seed}" / "images"
            files = sorted(folder.glob("*.png"))[: a.n] if folder.exists() else []
            rows.append((f"{m} {label}", [Image.open(f).convert("RGB") for f in files]))
    side = max((im.width for _, ims in rows for im in ims), default=64)
    sheet = Image.new("RGB", (130 + a.n * side, len(rows) * side), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (text, images) in enumerate(rows):
        draw.text((4, r * side + side // 2 - 6), text, fill="black")
        for i, im in enumerate(images):
            sheet.paste(im.resize((side, side)), (130 + i * side, r * side))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(a.out)
    print(f"wrote {a.out} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
