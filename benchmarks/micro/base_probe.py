"""Does a micro base draw hands? Text-only samples for a dataset's own prompts and for empty scenes.

Why: gate (b) failed on the full profile's base, and looking at its samples showed textures, no hands,
nearly the same picture for a hand prompt and an empty-scene prompt. This probe puts any base next to
its training photos so world designs can be compared at the same budget:

    python benchmarks/micro/base_probe.py --base B --data D --work outputs/micro/full --out probe.png

Prints the world detector's hand-present rate (threshold at 5 % false positives on the run's no-hand
calibration photos) for both prompt sets at CFG 3 and 9, and writes a sheet: real photos, then per CFG
the samples for their prompts and for empty-scene prompts (same seeds, so a row pair that looks alike
means the text is not read).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
EMPTY_PROMPTS = ["an empty scene in front of a brick wall", "no hand, only the background on a wooden table"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="a micro base folder (diffusers layout)")
    p.add_argument("--data", required=True, help="a world dataset whose prompts to sample (the last --n)")
    p.add_argument("--work", required=True, help="a micro run folder: tools/detector, data/empty_wild_calib")
    p.add_argument(
        "--empty",
        help="a no-hand dataset of the same world (micro.empty.render_empty): its captions are the "
        "empty-scene prompts, and its photos give the detector's real false-positive rate",
    )
    p.add_argument("--n", type=int, default=48)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--out", required=True, help="sheet PNG")
    args = p.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import gates  # benchmarks/micro/gates.py

    from handsynth.data import read_dataset
    from handsynth.micro.detector import WorldHandDetector
    from handsynth.micro.yardsticks import confidences, presence_threshold

    work, data, out = Path(args.work), Path(args.data), Path(args.out)
    det = WorldHandDetector.load(work / "tools" / "detector")
    no_hand = confidences(det, work / "data" / "empty_wild_calib")
    hands = work / "data" / "wild_gen"  # the run's held-out-pose photos, as in gates.py's margin threshold
    thr = presence_threshold(
        no_hand, 0.05, confidences(det, hands) if (hands / "metadata.jsonl").exists() else None
    )
    print(f"hand-present threshold {thr:.3f} (no-hand tail alone: {presence_threshold(no_hand, 0.05):.3f})")
    recs = [s for s in read_dataset(data) if s.prompt][-args.n :]
    empty_prompts = EMPTY_PROMPTS
    # the references a sample rate is read against: the detector on the world's own photos
    print(
        f"real photos of {data.name}: hand-present {float((confidences(det, data) >= thr)[-args.n :].mean()):.2f}"
    )
    if args.empty:
        empty_prompts = [s.prompt for s in read_dataset(args.empty) if s.prompt][:16]
        real_fp = float((confidences(det, Path(args.empty)) >= thr).mean())
        print(f"real no-hand photos of {Path(args.empty).name}: hand-present {real_fp:.2f}")
    empties = []
    for i in range(16):
        t = copy.deepcopy(recs[i % len(recs)])
        t.id = f"empty_{i}"
        t.prompt = empty_prompts[i % len(empty_prompts)]
        empties.append(t)
    tmp = out.with_suffix("")
    rows = [np.concatenate([np.asarray(Image.open(data / s.file_name).convert("RGB")) for s in recs[:12]], 1)]
    for cfg in (3.0, 9.0):
        imgs = gates.sample_base(Path(args.base), [s.prompt for s in recs], args.size, 20, cfg, 0)
        hand = float(
            (confidences(det, gates._write_images(recs, imgs, tmp / f"hand_cfg{cfg:g}")) >= thr).mean()
        )
        e = gates.sample_base(Path(args.base), [s.prompt for s in empties], args.size, 20, cfg, 0)
        empty = float(
            (confidences(det, gates._write_images(empties, e, tmp / f"empty_cfg{cfg:g}")) >= thr).mean()
        )
        print(
            f"CFG {cfg:g}: hand prompts hand-present {hand:.2f}; empty-scene prompts {empty:.2f}", flush=True
        )
        rows += [np.concatenate(imgs[:12], 1), np.concatenate(e[:12], 1)]
    Image.fromarray(np.concatenate(rows, 0)).save(out)
    print(f"sheet: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
