"""``handsynth render``: poses (records) -> a dataset folder of condition maps + a contact sheet."""

from __future__ import annotations

import argparse
from pathlib import Path

from handsynth import cli_args
from handsynth.errors import UserError

DEFAULT_SHEET_ROWS = 8


def parse_maps(text: str) -> tuple[str, ...]:
    from handsynth.render import MAP_NAMES

    maps = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in maps if m not in MAP_NAMES]
    if unknown or not maps:
        raise UserError(f"--maps {text!r}: unknown map(s) {unknown}; choose from {','.join(MAP_NAMES)}")
    return maps


def render_dataset(
    poses: str | Path,
    out: str | Path,
    maps: tuple[str, ...],
    size: int | None = None,
    hand_model: str | None = None,
    mano_dir: str | Path | None = None,
    local: bool = True,
    expand: float = 1.25,
    sheet_rows: int = DEFAULT_SHEET_ROWS,
) -> Path:
    """Render every record of ``poses`` into ``out`` (resumable); returns the contact sheet path."""
    from handsynth.data import DatasetWriter, atomic_write_file, read_dataset
    from handsynth.render.conditions import ConditionRenderer, scale_sample
    from handsynth.viz import contact_sheet

    samples = read_dataset(poses)
    if not samples:
        raise UserError(f"{poses} holds no records to render")
    config = {
        "stage": "render",
        "maps": list(maps),
        "size": size,
        "hand_model": hand_model,
        "local": local,
        "expand": expand,
    }
    renderer = ConditionRenderer(hand_model=hand_model, model_dir=mano_dir, expand=expand)
    for s in samples:  # every record is checked before anything is written
        renderer.check_record(scale_sample(s, size, size) if size is not None else s)
    writer = DatasetWriter(out, config=config, lock=True)
    rows, captions = [], []
    todo = [s for s in samples if not writer.has(s.id)]
    from handsynth.progress import progress

    for sample in progress(todo, desc="render", unit="pose"):
        if size is not None:
            sample = scale_sample(sample, size, size)
        sample.source = {**sample.source, "rendered_with": hand_model or "record"}
        sample, files = renderer.render_into(sample, maps, local=local)
        writer.write(sample, files)
    # The sheet is drawn from the folder, so a resumed run shows the same first samples.
    from handsynth.render import load_map

    root = Path(out)
    for s in read_dataset(root)[:sheet_rows]:
        row = [load_map(m, root / s.conditions[m]) for m in maps]
        if s.local is not None:
            row += [
                load_map(m, root / s.local.conditions[m]) for m in maps if m in ("mesh", "normal", "texture")
            ]
        rows.append(row)
        captions.append(
            f"{s.id}  " + ", ".join(f"{h.side}" for h in s.hands) + (f"  {s.prompt}" if s.prompt else "")
        )
    titles = list(maps) + [f"local {m}" for m in maps if local and m in ("mesh", "normal", "texture")]
    sheet = contact_sheet(rows, column_titles=titles, row_captions=captions, caption_lines=1)
    sheet_path = root / "contact_sheet.png"
    atomic_write_file(sheet_path, sheet)
    return sheet_path


def _run(args: argparse.Namespace) -> int:
    maps = parse_maps(args.maps)
    if args.hand_model == "mano" and not args.mano_dir:
        raise UserError(
            "--hand-model mano needs --mano-dir PATH (the folder holding MANO_RIGHT.pkl / MANO_LEFT.pkl)"
        )
    sheet = render_dataset(
        args.inp,
        args.out,
        maps,
        size=args.size,
        hand_model=args.hand_model,
        mano_dir=args.mano_dir,
        local=not args.no_local,
        expand=args.expand,
    )
    print(f"wrote {args.out} (contact sheet: {sheet})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from handsynth.render import MAP_NAMES

    p = sub.add_parser("render", help="render condition maps for poses into a dataset folder")
    p.add_argument("--in", dest="inp", required=True, help="poses.jsonl or a dataset folder")
    p.add_argument("--out", required=True, help="output dataset folder (resumed if it exists)")
    p.add_argument(
        "--size",
        type=cli_args.image_side,
        default=None,
        help="square output size (default: each record's own)",
    )
    p.add_argument("--maps", default=",".join(MAP_NAMES), help=f"comma list of {','.join(MAP_NAMES)}")
    p.add_argument(
        "--hand-model", choices=["openhand", "mano"], default=None, help="default: each record's own"
    )
    p.add_argument("--mano-dir", default=None, help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl")
    p.add_argument(
        "--expand", type=cli_args.positive, default=1.25, help="local crop: hand box expansion factor"
    )
    p.add_argument("--no-local", action="store_true", help="skip the local (hand crop) maps")
    p.set_defaults(func=_run)
