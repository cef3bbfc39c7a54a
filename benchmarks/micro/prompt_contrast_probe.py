"""Does the micro base respond to the side and gesture words at all? Same seeds, contrasting prompts.

Why: gate (b3) found the base's text-only samples read back at chance for side and gesture group. That
is either "draws them, but too coarsely to read" or "ignores the word". Sampling prompts that differ
in one word with the same seeds tells them apart: an ignored word gives the same images. The
keypoint reader (gate b3's) counts the gesture groups and sides it reads in each set, and the sheet
shows the first 12 images of each prompt, one row per prompt (at the last CFG scale).

    python benchmarks/micro/prompt_contrast_probe.py --work outputs/micro/full \
        --out benchmarks/results/micro_prompt_contrast.png
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

PROMPTS = {
    "fist": "a woman making a fist with the right hand in front of a brick wall",
    "open": "a woman waving with the fingers spread with the right hand in front of a brick wall",
    "left": "close-up of a woman's left hand showing one finger in front of a starry sky",
    "right": "close-up of a woman's right hand showing one finger in front of a starry sky",
}


def main(argv: list[str] | None = None) -> int:
    import torch
    from gates import sample_base
    from PIL import Image

    from handsynth.micro.detector import WorldHandDetector
    from handsynth.micro.reader import KeypointReader

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, type=Path, help="a finished micro run's work folder")
    p.add_argument("--n", type=int, default=32, help="images per prompt and scale (multiple of 16)")
    p.add_argument("--cfg", type=float, nargs="+", default=[3.0, 9.0], help="CFG scales")
    p.add_argument("--out", type=Path, default=None, help="sheet (png) of the last scale's images")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    det = WorldHandDetector.load(a.work / "tools" / "detector")
    reader = KeypointReader.load(a.work / "tools" / "reader")
    size = det.net.input_size  # the world's image size
    table = ["| CFG | prompt | gesture groups read | sides read |", "|---|---|---|---|"]
    print("\n".join(table))
    for cfg in a.cfg:
        rows = []
        for name, prompt in PROMPTS.items():
            images = []
            for k in range(0, a.n, 16):  # the same seeds for every prompt
                images += sample_base(a.work / "base", [prompt] * 16, size, 20, cfg, k)
            read = reader.read(np.array([d[0].keypoints for d in det.detect_batch(images)]))
            groups = ", ".join(f"{g} {c}" for g, c in sorted(Counter(read["gesture"]).items()))
            sides = ", ".join(f"{s} {c}" for s, c in sorted(Counter(read["side"]).items()))
            table.append(f"| {cfg:g} | {name}: {prompt} | {groups} | {sides} |")
            print(table[-1], flush=True)
            rows.append(np.concatenate(images[:12], 1))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        sheet = Image.fromarray(np.concatenate(rows, 0))
        sheet.resize((sheet.width * 3 // 2, sheet.height * 3 // 2), Image.Resampling.NEAREST).save(a.out)
        head = [
            "# Does the micro base respond to the side and gesture words?",
            "",
            f"`python benchmarks/micro/prompt_contrast_probe.py --work {a.work} --out {a.out}`: {a.n} text-only "
            "base samples per prompt and CFG scale, the same seeds for every prompt; gesture groups and sides "
            f"as gate (b3)'s keypoint reader reads them. Sheet `{a.out.name}`: the first 12 images per prompt "
            f"(rows in the table's order) at CFG {a.cfg[-1]:g}.",
            "",
        ]
        a.out.with_suffix(".md").write_text("\n".join(head + table) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
