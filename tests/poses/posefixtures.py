"""Hand–object pose records for the poses tests (valid records, no images)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def pose_record(
    rec_id: str,
    R: np.ndarray | None = None,
    t: tuple[float, float, float] = (0.0, 0.0, 0.5),
    name: str = "cup",
    sequence: tuple[str, int] | None = None,
    hand_pose: np.ndarray | None = None,
    global_orient: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> dict:
    R = np.eye(3) if R is None else np.asarray(R)
    pose = np.concatenate([R, np.asarray(t, dtype=float)[:, None]], axis=1)
    d = {
        "id": rec_id,
        "width": 256,
        "height": 256,
        "camera": {"K": [[300.0, 0, 128], [0, 300.0, 128], [0, 0, 1]]},
        "hands": [
            {
                "side": "right",
                "model": "openhand",
                "global_orient": list(global_orient),
                "hand_pose": [0.0] * 45 if hand_pose is None else [float(x) for x in hand_pose],
                "betas": [0.0] * 10,
                "transl": [0.0, 0.0, 0.5],
                "joints_3d": [[0.01 * j, 0.0, 0.5] for j in range(21)],
                "joints_2d": [[100.0 + j, 120.0] for j in range(21)],
                "bbox": [90.0, 100.0, 40.0, 50.0],
            }
        ],
        "objects": [{"name": name, "pose": pose.tolist()}],
        "source": {"generator": "test"},
    }
    if sequence is not None:
        d["sequence"] = {"id": sequence[0], "frame": sequence[1]}
    return d


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
