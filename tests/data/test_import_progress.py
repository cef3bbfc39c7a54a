"""``handsynth prepare``'s shared write loop reports progress as whole lines when stderr is a log."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np
from PIL import Image

from handsynth.importers.base import Frame, Importer, PrepareOptions, run_prepare


class TinyImporter(Importer):
    """Three hand-less frames of one image: the loop without MANO or a real dataset."""

    name, title, layout = "tiny", "Tiny", "image.png"
    needs_hand_model = False

    def check(self) -> None:
        self.need("image.png")

    def count(self) -> int:
        return 3

    def frames(self, skipped: Counter) -> Iterator[Frame]:
        for i in range(3):
            yield Frame(id=f"f{i}", image=self.root / "image.png", K=np.eye(3), width=8, height=8)


def test_prepare_progress_in_a_log_is_whole_lines(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("HANDSYNTH_PROGRESS_INTERVAL", "0")
    Image.new("RGB", (8, 8)).save(tmp_path / "image.png")
    opts = PrepareOptions(root=tmp_path, out=tmp_path / "out", link="copy")
    summary = run_prepare(TinyImporter(opts), opts)
    assert summary.written == 3
    err = capsys.readouterr().err
    assert "\r" not in err
    assert "prepare tiny: 3/3 (100%)" in err and "frame/s" in err
