"""``benchmarks/micro/handbooster_filter_probe.py``: its wrong-label control pairs every image with another
record's hands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

MICRO = Path(__file__).resolve().parents[2] / "benchmarks" / "micro"


def test_shuffled_labels_give_every_image_another_records_hands(tmp_path):
    sys.path.insert(0, str(MICRO))
    try:
        from handbooster_filter_probe import shuffled
    finally:
        sys.path.remove(str(MICRO))
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    recs = []
    for i in range(7):
        (src / "images" / f"{i}.png").write_bytes(b"png")
        recs.append(
            {"id": f"r{i}", "file_name": f"images/{i}.png", "hands": [{"side": "right", "transl": [i, 0, 0]}]}
        )
    (src / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = shuffled(src, tmp_path / "shuffled", seed=3)
    got = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert [g["id"] for g in got] == [r["id"] for r in recs]
    assert [g["file_name"] for g in got] == [r["file_name"] for r in recs]  # the same images ...
    assert (out / "images" / "0.png").read_bytes() == b"png"
    owners = [g["hands"][0]["transl"][0] for g in got]
    assert sorted(owners) == list(range(7)) and all(o != i for i, o in enumerate(owners))  # ... others' hands
