"""The HandBooster suite's contact sheet: what each row's model drew for the same conditions.

Rows (b)..(f) and (k) all draw from the ``real`` condition set, so their images of one condition sit side by
side next to its normal and texture maps and a holab photo of that very condition (what a perfect
synthesizer would draw; the filter yardstick's, first seed); rows (g)..(i) draw from their own sets (novel
grasps, FPS, cross-sampling), each shown as condition/image pairs. Unfiltered images (the filter may drop
some).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from sheet import BLANK, open_or_blank  # benchmarks/micro/sheet.py

from handsynth.data import dataset_root, read_dataset
from handsynth.viz import contact_sheet, stack_vertically


def _pose_id(record_id: str) -> str:
    """HandBooster names its crops ``<id>-right`` / ``<id>-left``; the rendered row keeps ``<id>``."""
    for suffix in ("-right", "-left"):
        if record_id.endswith(suffix):
            return record_id[: -len(suffix)]
    return record_id


def _records(folder: Path) -> dict[str, tuple[Path, object]]:
    """pose id -> (dataset root, record) of a generated set (first crop per pose)."""
    if not (folder / "metadata.jsonl").exists():
        return {}
    root = dataset_root(folder)
    out: dict[str, tuple[Path, object]] = {}
    for s in read_dataset(folder):
        out.setdefault(_pose_id(s.id), (root, s))
    return out


def _image(entry) -> Image.Image:
    return open_or_blank(entry[0] / entry[1].file_name) if entry and entry[1].file_name else BLANK


def _condition(entry, name: str) -> Image.Image:
    if not entry or name not in (entry[1].conditions or {}):
        return BLANK
    return open_or_blank(entry[0] / entry[1].conditions[name])


def _condition_of(rows: list, pose: str, name: str) -> Image.Image:
    """The ``name`` map of ``pose`` from the first row whose model reads that map (rows differ in maps)."""
    for _, recs in rows:
        entry = recs.get(pose)
        if entry and name in (entry[1].conditions or {}):
            return _condition(entry, name)
    return BLANK


def _photos(r, kind: str, seed: int) -> dict[str, tuple[Path, object]]:
    """pose id -> the holab photo of that condition in the generator's framing (``world render --poses``
    sample i shows the set's record i), as the filter's yardstick drew them at the first seed."""
    photos, conds = r.work / "eval" / "filter_yardstick" / f"photos_{kind}", r.conds(kind, seed)
    if seed != r.cfg["seeds"][0] or not (conds / "metadata.jsonl").exists():
        return {}
    ids = [s.id for s in read_dataset(conds) if s.hands]
    return {ids[int(pid.rsplit("_", 1)[1])]: entry for pid, entry in _records(photos).items()}


def write_handbooster_sheet(r, out: Path, n: int = 8, seed: int = 0) -> Path | None:
    """``n`` conditions of the ``real`` set × [normal, texture, holab photo, (b)..(f), (k)], then (g)..(i)
    as condition/image pairs. None when no row has generated anything yet."""
    same, own = [], []
    for row in r.synthetic_rows():
        spec = r.spec(row)
        if spec.get("generate_from"):
            continue  # (j) shows (i)'s images
        folder = r.gen_dir(row, seed) if spec.get("synthetic") == "render" else r.raw_dir(row, seed)
        (same if spec["conditions"] == "real" else own).append((row, _records(folder)))
    model_rows = [(row, recs) for row, recs in same if r.spec(row).get("synthetic") != "render"]
    if not any(recs for _, recs in same + own):
        return None
    # The poses every `real`-condition row has (the first model row's order: the condition set's).
    order = list(model_rows[0][1]) if model_rows else list(same[0][1]) if same else []
    parts = []
    if order:
        ids = order[:n]
        photos = _photos(r, "real", seed)
        rows = [
            [_condition_of(model_rows, i, "normal"), _condition_of(model_rows, i, "texture")]
            + [_image(photos.get(i))]
            + [_image(recs.get(i)) for _, recs in same]
            for i in ids
        ]
        titles = ["normal", "texture", "holab photo", *[row for row, _ in same]]
        parts.append(contact_sheet(rows, titles, ids, cell=96, caption_lines=1, title_lines=2))
    pairs = max(1, n // 2)
    rows, captions = [], []
    for row, recs in own:
        cells = []
        for entry in list(recs.values())[:pairs]:
            cells += [_condition(entry, "normal"), _image(entry)]
        rows.append(cells or [BLANK])
        captions.append(f"{row}: normal map | image, {pairs} conditions of its own set")
    if rows:
        parts.append(contact_sheet(rows, None, captions, cell=96, caption_lines=1))
    if not parts:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    stack_vertically(parts).save(out)
    return out
