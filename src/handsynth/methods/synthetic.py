"""A tiny synthetic AttentionHand training set (for tests, CPU smoke runs and the TAS benchmark).

Each sample is a flat background with a coloured "hand" blob at the projection of 21 joints, a mesh
condition image that is the blob's silhouette, a local crop box around it and a hand prompt. Labels are
self-consistent (joints_3d are what the OpenHand parameters pose, joints_2d = K @ joints_3d), so the
records pass validation, and rendering their poses gives maps that match their labels, like real ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from handsynth.data.folder import DatasetWriter
from handsynth.data.records import Hand, LocalCrop, Sample
from handsynth.render.body import compose_body_map
from handsynth.render.skeleton import draw_skeleton

PROMPTS = [
    "a person holding a red cup with the right hand",
    "a woman waving her hand at the camera",
    "a man grabbing a phone with his hand",
    "a child pointing a finger at a book",
]


def write_synthetic_dataset(
    folder: str | Path, n: int = 4, size: int = 128, seed: int = 0, extra_maps: tuple[str, ...] = ()
) -> Path:
    """Write ``n`` samples of ``size``^2 to ``folder`` (a record dataset folder) and return it.

    ``extra_maps`` adds condition maps beside the mesh: ``seg`` (the blob as right hand, label 1),
    ``depth`` (the blob at 500 mm), ``normal`` (facing the camera), ``texture`` (the blob's colour),
    ``skeleton`` (the joints' OpenPose drawing) and ``body`` (a grey arm bar from the wrist to the bottom
    edge), for methods that read several maps.
    """
    import torch

    from handsynth.hand import load_hand_model

    rng = np.random.default_rng(seed)
    writer = DatasetWriter(folder)
    model = load_hand_model("openhand", side="right")
    f = size * 1.2
    K = [[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]]
    for i in range(n):
        sid = f"{i:06d}"
        if writer.has(sid):
            continue
        centre = np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), 0.5])
        orient = rng.normal(scale=0.3, size=3)
        with torch.no_grad():
            posed = model(
                torch.tensor(orient[None], dtype=torch.float32),
                transl=torch.tensor(centre[None], dtype=torch.float32),
                joints_only=True,
            )
        joints = posed.joints[0].numpy().astype(np.float64)
        uv = joints[:, :2] / joints[:, 2:] * f + size / 2
        x0, y0 = uv.min(0) - 4
        x1, y1 = uv.max(0) + 4
        bg = tuple(int(c) for c in rng.integers(0, 255, 3))
        skin = (int(rng.integers(150, 255)), int(rng.integers(90, 180)), int(rng.integers(60, 140)))
        img = Image.new("RGB", (size, size), bg)
        mesh = Image.new("RGB", (size, size), (0, 0, 0))
        for canvas, colour in ((img, skin), (mesh, (200, 200, 255))):
            d = ImageDraw.Draw(canvas)
            d.ellipse([x0, y0, x1, y1], fill=colour)
            for u, v in uv:
                d.ellipse([u - 2, v - 2, u + 2, v + 2], fill=tuple(max(c - 60, 0) for c in colour))
        side = float(max(x1 - x0, y1 - y0) * 1.25)
        box = [float((x0 + x1) / 2 - side / 2), float((y0 + y1) / 2 - side / 2), side]
        hand = Hand(
            side="right",
            model="openhand",
            global_orient=orient.tolist(),
            hand_pose=[0.0] * 45,
            betas=[0.0] * 10,
            transl=centre.tolist(),
            joints_3d=joints.tolist(),
            joints_2d=uv.tolist(),
            bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        )
        sample = Sample(
            id=sid,
            width=size,
            height=size,
            K=K,
            hands=[hand],
            prompt=PROMPTS[i % len(PROMPTS)],
            file_name=f"images/{sid}.png",
            conditions={m: f"conditions/{m}/{sid}.png" for m in ("mesh", *extra_maps)},
            local=LocalCrop(box=box, size=size, conditions={}),
            source={"generator": "handsynth.methods.synthetic", "seed": seed},
        )
        files = {sample.file_name: img, sample.conditions["mesh"]: mesh}
        silhouette = np.asarray(mesh)[..., 0] > 0
        if "seg" in extra_maps:
            files[sample.conditions["seg"]] = Image.fromarray(silhouette.astype(np.uint8))
        if "normal" in extra_maps:  # a flat blob facing the camera: n = (0, 0, -1)
            files[sample.conditions["normal"]] = Image.fromarray(
                np.where(silhouette[..., None], np.uint8([128, 128, 0]), np.uint8(0)).astype(np.uint8)
            )
        if "texture" in extra_maps:  # the blob in its skin colour on black
            files[sample.conditions["texture"]] = Image.fromarray(
                np.where(silhouette[..., None], np.asarray(img), 0).astype(np.uint8)
            )
        if "depth" in extra_maps:
            files[sample.conditions["depth"]] = Image.fromarray(silhouette.astype(np.uint16) * 500)
        if "skeleton" in extra_maps:
            files[sample.conditions["skeleton"]] = draw_skeleton([uv], size, size)
        if "body" in extra_maps:
            arm = np.zeros((size, size), bool)
            u, v = (int(np.clip(c, 0, size - 1)) for c in uv[0])
            arm[v:, max(u - size // 16, 0) : u + size // 16 + 1] = True
            files[sample.conditions["body"]] = compose_body_map(size, size, arm & ~silhouette)
        writer.write(sample, files)
    return Path(folder)
