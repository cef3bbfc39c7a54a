"""How well gate (b3)'s keypoint reader reads side and gesture group from a finished micro run's photos.

Why: (b3) judges the base only where its reader can read real photos of the same poses
(``gates.readback``). This probe shows, per real split, the reader fed the world detector's keypoints
(what the gate does) next to the same reader fed the records' true 2D joints (the ceiling a perfect
detector would give) and the majority rate (always answering the commonest label, kappa 0).

    python benchmarks/micro/reader_probe.py --work outputs/micro/full \
        [--reader outputs/micro/full/tools/reader] [--out benchmarks/results/micro_reader_probe.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

SPLITS = ("wild_gen", "wild_gen_ref", "lab_gen", "wild_test")


class TrueJoints:
    """A 'detector' that returns each record's labelled 2D joints: the reader's ceiling."""

    def __init__(self, folder: Path) -> None:
        from handsynth.data import read_dataset

        self.joints = [
            np.asarray(s.hands[0].joints_2d) for s in read_dataset(folder) if s.file_name and s.hands
        ]

    def detect_batch(self, images: list) -> list:
        from handsynth.eval.keypoints2d import Detection

        assert len(images) == len(self.joints)
        return [[Detection(j, 1.0)] for j in self.joints]


def main(argv: list[str] | None = None) -> int:
    import torch
    from gates import readback

    from handsynth.micro.detector import WorldHandDetector
    from handsynth.micro.reader import KeypointReader

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, type=Path, help="a finished micro run's work folder")
    p.add_argument("--reader", type=Path, default=None, help="reader folder (default WORK/tools/reader)")
    p.add_argument("--out", type=Path, default=None, help="write the table as markdown here too")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    reader = KeypointReader.load(a.reader or a.work / "tools" / "reader")
    det = WorldHandDetector.load(a.work / "tools" / "detector")
    rows = [
        "| split | keypoints from | images | side acc. | side majority | side kappa "
        "| gesture group acc. | gesture majority | gesture kappa |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for split in SPLITS:
        folder = a.work / "data" / split
        if not (folder / "metadata.jsonl").exists():
            continue
        for source, d in (("world detector", det), ("true 2D joints", TrueJoints(folder))):
            res = readback(reader, d, folder)
            if res["side"] is None:
                continue
            s, g = res["side"], res["gesture"]
            rows.append(
                f"| {split} | {source} | {s[3]} | {s[0]:.2f} | {s[1]:.2f} | {s[2]:.2f} "
                f"| {g[0]:.2f} | {g[1]:.2f} | {g[2]:.2f} |"
            )
            print(rows[-1], flush=True)
    if a.out:
        import json

        meta = json.loads(((a.reader or a.work / "tools" / "reader") / "config.json").read_text())
        t = meta.get("training", {})
        head = [
            "# Gate (b3)'s keypoint reader on real photos",
            "",
            f"Reader: {t.get('poses')} synthetic world poses, {t.get('steps')} steps, noise {t.get('noise')} "
            f"({t.get('seconds')} s). Run: `{a.work}`. Command: `python benchmarks/micro/reader_probe.py "
            f"--work {a.work} --out {a.out}`.",
            "Majority = always answering the commonest label (kappa 0); (b3) needs kappa >= 0.25 on the oracle "
            "photos (wild_gen) before it judges the base.",
            "",
        ]
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text("\n".join(head + rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
