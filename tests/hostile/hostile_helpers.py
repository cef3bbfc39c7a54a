"""Helpers of the hostile suite (a uniquely named module, imported by the tests): records written byte by byte, the real CLI entry point, file snapshots.

Every case runs ``handsynth.cli.main`` (the console script's function) in-process, so a Python
traceback would surface as an uncaught exception and fail the test; ``run_cli`` also asserts the
refusal is one line naming the problem and that the named folders are byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from handsynth.cli import main


def record(i: int, image: bool = True, **over) -> dict:
    """A valid record (one right hand in front of a 64x64 camera) as a plain dict."""
    d = {
        "id": f"r{i:03d}",
        "width": 64,
        "height": 64,
        "camera": {"K": [[80.0, 0, 32], [0, 80.0, 32], [0, 0, 1]]},
        "hands": [
            {
                "side": "right",
                "model": "openhand",
                "global_orient": [0.0, 0.0, 0.0],
                "hand_pose": [0.0] * 45,
                "betas": [0.0] * 10,
                "transl": [0.0, 0.0, 0.5],
                "joints_3d": [[0.001 * j, 0.0, 0.5] for j in range(21)],
                "joints_2d": [[32.0 + 0.16 * j, 32.0] for j in range(21)],
                "bbox": [24.0, 24.0, 16.0, 16.0],
            }
        ],
        "prompt": "",
        "source": {"generator": "test"},
    }
    if image:
        d["file_name"] = f"images/r{i:03d}.png"
    d.update(over)
    return d


def write_folder(folder: Path, records: list[dict], final_newline: bool = True, images: bool = True) -> Path:
    """A dataset folder written directly (not through DatasetWriter), so its bytes are exactly these."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join(json.dumps(r) for r in records) + ("\n" if final_newline else "")
    (folder / "metadata.jsonl").write_text(text, encoding="utf-8")
    rng = np.random.default_rng(0)
    for r in records:
        if images and r.get("file_name") and "/" in r["file_name"] and ".." not in r["file_name"]:
            path = folder / r["file_name"]
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (r["height"], r["width"], 3), dtype=np.uint8)).save(path)
    return folder


def snapshot(*folders: Path) -> dict[str, str]:
    """Path -> sha256 of every file under ``folders`` (missing folders count as empty)."""
    out = {}
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            out[str(folder)] = hashlib.sha256(folder.read_bytes()).hexdigest()
            continue
        for p in sorted(folder.rglob("*")) if folder.exists() else []:
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse refusals
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


def refused(
    argv: list[str], capsys: pytest.CaptureFixture, *words: str, unchanged: tuple[Path, ...] = ()
) -> str:
    """Assert the CLI refuses ``argv``: exit 2, one error line naming ``words``, ``unchanged`` untouched."""
    before = snapshot(*unchanged)
    rc, _, err = run_cli(argv, capsys)
    lines = [ln for ln in err.strip().splitlines() if ln.startswith(("handsynth", "usage:")) or "error" in ln]
    message = next((ln for ln in lines if "error" in ln), "")
    assert rc == 2, f"exit code {rc}, stderr: {err}"
    assert "Traceback" not in err, err
    assert message, f"no error line in: {err}"
    for w in words:
        assert w.lower() in message.lower(), f"{w!r} not in {message!r}"
    assert snapshot(*unchanged) == before, "a file was changed, added or removed"
    return message


def generate_argv(inp: Path, out: Path) -> list:
    """The cheapest real ``generate`` command (text-to-image on the built-in tiny base)."""
    return ["generate", "--method", "sd", "--base-model", "tiny", "--in", inp, "--out", out]


def posed_record(i: int, **over) -> dict:
    """A record whose labels are what its OpenHand parameters pose (what ``render`` accepts)."""
    import torch

    from handsynth.hand import load_hand_model

    d = record(i, image=False, **over)
    h = d["hands"][0]
    model = load_hand_model("openhand", side="right")
    params = [
        torch.tensor([h[k]], dtype=torch.float32) for k in ("global_orient", "hand_pose", "betas", "transl")
    ]
    with torch.no_grad():
        out = model(*params)
    K = np.asarray(d["camera"]["K"])

    def project(p: np.ndarray) -> np.ndarray:
        uv = p @ K.T
        return uv[:, :2] / uv[:, 2:]

    joints = out.joints[0].numpy().astype(float)
    verts = project(out.vertices[0].numpy().astype(float))
    lo, hi = verts.min(0), verts.max(0)
    h.update(
        joints_3d=joints.tolist(),
        joints_2d=project(joints).tolist(),
        bbox=[float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])],
    )
    return d
