"""``--report PNG`` of the ``poses`` commands, drawn with PIL and the numpy mesh preview (the pose tools
sit below the OpenGL renderer): for ``fps`` and ``cross-sample`` the paper's Fig. 4 (pose similarity
matrices of FPS picks next to random picks; the histogram of each synthetic pose's mean similarity to the
real poses before and after cross-sampling); for ``grasp`` the energy curves and a sheet of grasps; for
``validate`` the pass rate per criterion and kept / rejected grasps; for ``grasp-status`` the
rotation/translation errors against the thresholds; for ``rest``, ``views``, ``align`` and ``compose``
a sheet of the first records drawn (hands and objects, the record's camera)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from handsynth.data.records import Sample, object_pose
from handsynth.objects.meshes import load_mesh, resolve_mesh
from handsynth.pinhole import project
from handsynth.poses.features import unit_rows
from handsynth.poses.rigid import HandPoser
from handsynth.viz import contact_sheet, rasterize

SIDE = 160
MAX_OBJECTS = 4


def _matrix_image(sim: np.ndarray, lo: float, hi: float) -> Image.Image:
    gray = np.clip((sim - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    return Image.fromarray((gray * 255).astype(np.uint8)).resize((SIDE, SIDE), Image.NEAREST).convert("RGB")


def _mean_off_diagonal(sim: np.ndarray) -> float:
    n = len(sim)
    return float((sim.sum() - np.trace(sim)) / max(n * (n - 1), 1))


def fps_report(groups: list[tuple[str, np.ndarray, list[int]]], seed: int, path: Path) -> None:
    """One row per object (at most four): cosine similarity among the FPS picks | among as many random
    picks (brighter = more similar; one grey scale per row). Lower mean similarity = more diverse."""
    rng = np.random.default_rng(seed)
    rows = groups[:MAX_OBJECTS]
    canvas = Image.new("RGB", (2 * SIDE + 30, len(rows) * (SIDE + 30) + 10), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (name, vecs, picks) in enumerate(rows):
        unit = unit_rows(vecs)
        rand = rng.choice(len(unit), size=len(picks), replace=False)
        sims = [unit[picks] @ unit[picks].T, unit[rand] @ unit[rand].T]
        lo, hi = min(s.min() for s in sims), max(s.max() for s in sims)
        y = 10 + r * (SIDE + 30)
        for c, (label, sim) in enumerate(zip(("FPS", "random"), sims, strict=True)):
            x = 10 + c * (SIDE + 10)
            canvas.paste(_matrix_image(sim, lo, hi), (x, y + 14))
            draw.text((x, y), f"{name} {label}: mean {_mean_off_diagonal(sim):.3f}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def mean_similarity(synthetic: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Each synthetic row's mean cosine similarity to the real rows."""
    return unit_rows(synthetic) @ unit_rows(real).mean(axis=0)


def cross_report(before: np.ndarray, after: np.ndarray, path: Path, bins: int = 30) -> None:
    """Histograms (share of poses per bin) of the real–synthetic mean similarity: all synthetic poses
    (grey) and the drawn ones (blue). Cross-sampling should move mass to the left (less real-like)."""
    width, height, pad = 480, 220, 30
    lo, hi = float(min(before.min(), after.min())), float(max(before.max(), after.max()))
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
    shares = [np.histogram(v, edges)[0] / max(len(v), 1) for v in (before, after)]
    top = max(s.max() for s in shares) or 1.0
    canvas = Image.new("RGB", (width, height + 2 * pad), "white")
    draw = ImageDraw.Draw(canvas)
    bar = (width - 2 * pad) / bins
    for share, colour, shift in zip(shares, ((150, 150, 150), (40, 90, 200)), (0.0, 0.5), strict=True):
        for b, s in enumerate(share):
            x0 = pad + (b + shift) * bar
            draw.rectangle([x0, pad + height * (1 - s / top), x0 + bar / 2, pad + height], fill=colour)
    draw.text((pad, 5), "mean cos to real poses: all synthetic (grey) vs drawn (blue)", fill="black")
    draw.text((pad, height + pad + 5), f"{lo:.3f}", fill="black")
    draw.text((width - pad - 40, height + pad + 5), f"{hi:.3f}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


SKIN = (0.93, 0.72, 0.60)
OBJECT = (0.55, 0.62, 0.75)  # objects without colours of their own
SHEET_CELL = 192
CHART = (480, 200)


def scene_image(sample: Sample, poser: HandPoser, cell: int = SHEET_CELL) -> np.ndarray:
    """The record's hands and objects drawn from its camera, framed on them (a ``cell``² RGB array)."""
    verts, faces, colours = [], [], []
    for hand in sample.hands:
        v, _ = poser.pose(hand, sample.flat_hand_mean)
        f = np.asarray(poser.model(hand.model, hand.side).faces, dtype=np.int64)
        faces.append(f + sum(len(x) for x in verts))
        verts.append(v)
        colours.append(np.tile(SKIN, (len(v), 1)))
    for i, obj in enumerate(sample.extra.get("objects") or []):
        mesh = load_mesh(resolve_mesh(obj.get("mesh"), None, f"record {sample.id}, object {i}"), sample.id)
        R, t, scale = object_pose(obj)
        vc = getattr(mesh.visual, "vertex_colors", None)
        own = vc is not None and len(vc) == len(mesh.vertices) and mesh.visual.kind == "vertex"
        faces.append(np.asarray(mesh.faces, dtype=np.int64) + sum(len(x) for x in verts))
        verts.append(scale * np.asarray(mesh.vertices) @ R.T + t)
        colours.append(np.asarray(vc)[:, :3] / 255.0 if own else np.tile(OBJECT, (len(mesh.vertices), 1)))
    if not verts:
        return np.full((cell, cell, 3), 255, np.uint8)
    v = np.concatenate(verts)
    K = np.asarray(sample.K, dtype=np.float64)
    uv = project(v[v[:, 2] > 1e-6], K)
    lo, hi = uv.min(0), uv.max(0)
    side = 1.15 * max(float((hi - lo).max()), 1.0)
    x0, y0 = (lo + hi) / 2 - side / 2
    zoom = cell / side  # the camera stays put: only the intrinsics zoom onto the scene
    K_view = np.array([[zoom * K[0, 0], 0, zoom * (K[0, 2] - x0)], [0, zoom * K[1, 1], zoom * (K[1, 2] - y0)],
                       [0, 0, 1.0]])  # fmt: skip
    return rasterize(v, np.concatenate(faces), K_view, cell, cell, color=np.concatenate(colours))


def _captioned(img: np.ndarray, text: str, colour: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    out = Image.fromarray(img)
    ImageDraw.Draw(out).text((4, 3), text, fill=colour)
    return out


def _sheet(cells: Sequence[Image.Image], columns: int = 4) -> Image.Image:
    rows = [list(cells[i : i + columns]) for i in range(0, len(cells), columns)]
    return contact_sheet(rows, cell=SHEET_CELL)


def _titled(title: str, *parts: Image.Image) -> Image.Image:
    """The parts one below the other on white, under a title line."""
    width = max(p.width for p in parts)
    out = Image.new("RGB", (width, 18 + sum(p.height + 6 for p in parts)), "white")
    ImageDraw.Draw(out).text((6, 4), title, fill="black")
    y = 18
    for p in parts:
        out.paste(p, (0, y))
        y += p.height + 6
    return out


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def records_report(
    samples: Sequence[Sample], poser: HandPoser, path: Path, title: str, captions: Sequence[str] | None = None,
    limit: int = 8,
) -> None:  # fmt: skip
    """A sheet of the first ``limit`` records drawn (``poses rest | views | align | compose``)."""
    shown = list(samples)[:limit]
    texts = list(captions or [s.id for s in shown])
    cells = [_captioned(scene_image(s, poser), t) for s, t in zip(shown, texts, strict=False)]
    parts = [_sheet(cells)] if cells else [_captioned(np.full((40, 300, 3), 255, np.uint8), "no records")]
    _save(_titled(f"{title} (first {len(cells)} of {len(samples)})", *parts), path)


def _chart_canvas(title: str) -> tuple[Image.Image, ImageDraw.ImageDraw, tuple[int, int, int, int]]:
    """A white chart image with a framed plot box (left, top, right, bottom) under ``title``."""
    width, height = CHART
    pad = 40
    img = Image.new("RGB", (width, height + 2 * pad), "white")
    draw = ImageDraw.Draw(img)
    box = (pad, pad, width - 10, pad + height)
    draw.rectangle(box, outline=(120, 120, 120))
    draw.text((box[0], box[1] - 13), title, fill="black")
    return img, draw, box


def line_chart(curves: Sequence[tuple[Sequence[float], tuple[int, int, int]]], title: str) -> Image.Image:
    """Curves (values, colour) against their index on a log10 y axis (energies span decades)."""
    img, draw, box = _chart_canvas(title)
    logs = [np.log10(np.clip(np.asarray(c, dtype=np.float64), 1e-9, None)) for c, _ in curves if len(c)]
    if not logs:
        draw.text((box[0] + 6, box[1] + 6), "no curve (every batch was already written)", fill="black")
        return img
    lo, hi = min(float(c.min()) for c in logs), max(float(c.max()) for c in logs)
    hi = hi if hi > lo else lo + 1.0
    steps = max(len(c) for c in logs) - 1 or 1
    for ys, (_, colour) in zip(logs, [c for c in curves if len(c[0])], strict=True):
        x = box[0] + (box[2] - box[0]) * np.arange(len(ys)) / steps
        y = box[3] - (box[3] - box[1]) * (ys - lo) / (hi - lo)
        draw.line(list(zip(x.tolist(), y.tolist(), strict=True)), fill=colour, width=1)
    draw.text((4, box[1]), f"{10**hi:.3g}", fill="black")
    draw.text((4, box[3] - 10), f"{10**lo:.3g}", fill="black")
    draw.text((box[0], box[3] + 4), "0", fill="black")
    draw.text((box[2] - 40, box[3] + 4), f"{steps} steps", fill="black")
    return img


def bar_chart(
    values: dict[str, float], title: str, colours: dict[str, tuple[int, int, int]] | None = None
) -> Image.Image:
    """Shares in [0, 1] as bars, each labelled with its name and percentage."""
    img, draw, box = _chart_canvas(title)
    slot = (box[2] - box[0]) / max(len(values), 1)
    for k, (name, v) in enumerate(values.items()):
        x0 = box[0] + k * slot + slot * 0.15
        top = box[3] - (box[3] - box[1]) * float(np.clip(v, 0.0, 1.0))
        draw.rectangle([x0, top, x0 + slot * 0.7, box[3]], fill=(colours or {}).get(name, (40, 90, 200)))
        draw.text((x0, box[3] + 4), name, fill="black")
        draw.text((x0, min(top, box[3] - 12) - 12), f"{100 * v:.0f}%", fill="black")
    return img


def grasp_report(
    histories: Sequence[tuple[str, Sequence[float]]], samples: Sequence[Sample], poser: HandPoser, path: Path
) -> None:
    """``poses grasp``: the mean energy per annealing step of every batch run (one colour per object)
    and a sheet of the first grasps with their final energy."""
    names = sorted({name for name, _ in histories})
    palette = [(40, 90, 200), (200, 70, 50), (60, 150, 70), (150, 90, 180), (200, 150, 40), (60, 160, 170)]
    colour = {n: palette[i % len(palette)] for i, n in enumerate(names)}
    chart = line_chart(
        [(h, colour[n]) for n, h in histories],
        "mean energy per step, log scale ("
        + ", ".join(f"{n}: colour {i + 1}" for i, n in enumerate(names))
        + ")",
    )
    shown = list(samples)[:8]
    energies = [s.source.get("handbooster", {}).get("grasp", {}).get("energy") for s in shown]
    cells = [
        _captioned(scene_image(s, poser), s.id if e is None else f"{s.id}  E {e:.3g}")
        for s, e in zip(shown, energies, strict=True)
    ]
    parts = [chart] + ([_sheet(cells)] if cells else [])
    _save(_titled(f"poses grasp: {len(histories)} batches run, {len(samples)} grasps", *parts), path)


def validate_report(
    rates: dict[str, float],
    verdicts: Sequence[tuple[Sample, bool, str]],
    n: int,
    poser: HandPoser,
    path: Path,
) -> None:
    """``poses validate``: pass rate per criterion and overall, then up to four kept grasps (green) and
    four rejected ones (red, with the failed criteria)."""
    chart = bar_chart(rates, f"pass rate per criterion of {n} grasps", {"all": (60, 150, 70)})
    kept = [v for v in verdicts if v[1]][:4]
    rejected = [v for v in verdicts if not v[1]][:4]
    cells = [
        _captioned(scene_image(s, poser), f"{s.id}: {why}", (30, 130, 40) if ok else (200, 40, 40))
        for s, ok, why in kept + rejected
    ]
    parts = [chart] + ([_sheet(cells)] if cells else [])
    _save(_titled("poses validate", *parts), path)


def scatter_chart(
    points: np.ndarray, marked: np.ndarray, limits: tuple[float, float], labels: tuple[str, str], title: str
) -> Image.Image:
    """(x, y) points, ``marked`` ones red, with the two thresholds as dashed-looking grey lines."""
    img, draw, box = _chart_canvas(title)
    top = np.maximum(np.nanmax(points, axis=0) if len(points) else np.zeros(2), 1.5 * np.asarray(limits))
    top = np.where(top > 0, top, 1.0)

    def to_px(x: float, y: float) -> tuple[float, float]:
        return box[0] + (box[2] - box[0]) * x / top[0], box[3] - (box[3] - box[1]) * y / top[1]

    lx, _ = to_px(limits[0], 0)
    _, ly = to_px(0, limits[1])
    draw.line([(lx, box[1]), (lx, box[3])], fill=(160, 160, 160))
    draw.line([(box[0], ly), (box[2], ly)], fill=(160, 160, 160))
    for (x, y), m in zip(points, marked, strict=True):
        px, py = to_px(float(x), float(y))
        draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=(200, 40, 40) if m else (110, 110, 110))
    draw.text((box[0], box[3] + 4), f"{labels[0]} (0 .. {top[0]:.3g})", fill="black")
    draw.text((4, box[1]), f"{top[1]:.3g}", fill="black")
    draw.text((box[0] + 4, box[1] + 4), labels[1], fill="black")
    return img


def grasp_status_report(
    errors: np.ndarray, grasping: np.ndarray, limits: tuple[float, float], path: Path
) -> None:
    """``poses grasp-status``: each record's RTE (mm) against RRE (degrees), grasping ones red, with the
    thresholds."""
    chart = scatter_chart(
        np.asarray(errors, dtype=np.float64).reshape(-1, 2), np.asarray(grasping, dtype=bool), limits,
        ("RTE mm", "RRE deg"), f"{int(np.sum(grasping))} of {len(grasping)} records grasping (red)",
    )  # fmt: skip
    _save(_titled("poses grasp-status: object pose change since the sequence's first frame", chart), path)
