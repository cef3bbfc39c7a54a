"""Loading the user's MANO files without chumpy, and converting them to plain ``.npz``.

The official ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` are Python-2 pickles whose arrays are wrapped in
``chumpy.ch.Ch`` objects, and chumpy does not import on numpy >= 1.24. The unpickler below maps every
``chumpy.*`` class to :class:`ChumpyStub`, which keeps the pickled state, and reads the array from it.
``handsynth mano convert`` writes the result as a plain ``.npz`` (readable by smplx with ``ext="npz"``).

The left model's ``shapedirs`` is not mirrored (its x component equals the right model's; smplx issue
#48): with both files present the loader negates it, as InterHand2.6M does.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from handsynth.data.folder import atomic_write_bytes
from handsynth.errors import UserError
from handsynth.hand.arrays import HandArrays
from handsynth.hand.joints import MANO_PARENTS, MANO_TIP_VERTICES

log = logging.getLogger(__name__)

MANO_URL = "https://mano.is.tue.mpg.de"
ENV_DIR = "HANDSYNTH_MANO_DIR"
FILE_STEM = {"right": "MANO_RIGHT", "left": "MANO_LEFT"}
FIXED_FLAG = "handsynth_left_shapedirs_fixed"


class ChumpyStub:
    """Stands in for any chumpy class while unpickling; keeps the object's pickled state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._state: Any = None

    def __setstate__(self, state: Any) -> None:
        self._state = state

    def to_array(self) -> np.ndarray:
        """The array a plain ``Ch`` holds (its ``x`` term)."""
        state = self._state
        if isinstance(state, tuple):  # (dict, slots) form
            state = next((s for s in state if isinstance(s, dict)), None)
        if isinstance(state, dict):
            for key in ("x", "_x"):
                if key in state:
                    value = state[key]
                    return value.to_array() if isinstance(value, ChumpyStub) else np.asarray(value)
            arrays = [v for v in state.values() if isinstance(v, np.ndarray)]
            if len(arrays) == 1:  # a Ch subclass keeping its value under another name
                return arrays[0]
        raise UserError(
            "a MANO pickle holds a chumpy expression that is not a plain array; convert it once with "
            "chumpy available (e.g. smplx's tools/clean_ch.py) or use the files from mano.is.tue.mpg.de"
        )


class _MANOUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return ChumpyStub
        if module.startswith("scipy.sparse"):
            import scipy.sparse

            if hasattr(scipy.sparse, name):
                return getattr(scipy.sparse, name)
        if module.startswith("numpy.core"):  # pickles written with numpy < 2
            try:
                return super().find_class(module.replace("numpy.core", "numpy._core", 1), name)
            except (ImportError, AttributeError):
                pass
        return super().find_class(module, name)


def _plain(value: Any) -> Any:
    if isinstance(value, ChumpyStub):
        return value.to_array()
    try:
        import scipy.sparse

        if scipy.sparse.issparse(value):
            return np.asarray(value.todense())
    except ImportError:  # pragma: no cover
        pass
    return value


def read_mano_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """The dictionary of an official MANO pickle with chumpy arrays and sparse matrices made plain numpy."""
    with open(path, "rb") as f:
        data = _MANOUnpickler(f, encoding="latin1").load()
    if not isinstance(data, dict):
        raise UserError(
            f"{path} is not a MANO model file (expected a pickled dict, got {type(data).__name__})"
        )
    return {str(k): _plain(v) for k, v in data.items()}


def read_mano_file(path: str | os.PathLike) -> dict[str, Any]:
    """A MANO model as a dict of arrays, from the official ``.pkl`` or a converted ``.npz``."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    return read_mano_pickle(path)


def search_dirs(model_dir: Path | None) -> list[Path]:
    """Folders looked in, in order: the given one (and its ``mano/`` child), else ``$HANDSYNTH_MANO_DIR``."""
    if model_dir is None:
        env = os.environ.get(ENV_DIR)
        model_dir = Path(env) if env else Path("models")
    return [model_dir, model_dir / "mano"]


def find_mano_file(side: str, model_dir: Path | None) -> Path:
    """The MANO file for ``side``: a path to a file is used as is; in a folder ``.npz`` wins over ``.pkl``."""
    if model_dir is not None and model_dir.is_file():
        return model_dir
    dirs = search_dirs(model_dir)
    for d in dirs:
        for ext in (".npz", ".pkl"):
            p = d / f"{FILE_STEM[side]}{ext}"
            if p.is_file():
                return p
    raise UserError(
        f"{FILE_STEM[side]}.pkl was not found in {dirs[0].resolve()} (nor its mano/ subfolder): download "
        f"MANO from {MANO_URL} (free registration), put the pickles there or pass --mano-dir, "
        "or use --hand-model openhand"
    )


def _needs_left_fix(left: dict[str, Any], left_path: Path) -> bool | None:
    """True if the left shapedirs' x equals the right model's (the bug); None if it cannot be told."""
    if bool(np.asarray(left.get(FIXED_FLAG, False))):
        return False
    right_path = next(
        (
            p
            for p in (left_path.with_name("MANO_RIGHT.npz"), left_path.with_name("MANO_RIGHT.pkl"))
            if p.is_file()
        ),
        None,
    )
    if right_path is None:
        return None
    right = read_mano_file(right_path)
    a, b = np.asarray(left["shapedirs"])[:, 0, :], np.asarray(right["shapedirs"])[:, 0, :]
    if a.shape != b.shape:
        return None
    # InterHand2.6M's test: the buggy file has (almost) the same x-shapedirs as the right model.
    return bool(np.abs(a - b).sum() < 1)


def fix_left(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Negate the left model's ``shapedirs[:, 0, :]`` when it is the unmirrored copy of the right one."""
    need = _needs_left_fix(data, path)
    if need is None:
        log.warning(
            "%s: cannot check the left-hand shapedirs sign (smplx issue #48) without MANO_RIGHT beside it; "
            "using the file as is",
            path,
        )
        return data
    if need:
        data = dict(data)
        sd = np.array(data["shapedirs"], dtype=np.float64)
        sd[:, 0, :] *= -1
        data["shapedirs"] = sd
        data[FIXED_FLAG] = np.array(True)
        log.info("%s: negated shapedirs[:, 0, :] (MANO left-hand fix, smplx issue #48)", path)
    return data


def arrays_from_dict(data: dict[str, Any], side: str, where: str = "MANO file") -> HandArrays:
    """Validate a MANO dict and turn it into :class:`HandArrays`."""
    missing = [
        k
        for k in ("v_template", "shapedirs", "J_regressor", "weights", "kintree_table", "f")
        if k not in data
    ]
    if missing:
        raise UserError(f"{where} lacks {', '.join(missing)}: it is not a MANO model file")
    v = np.asarray(data["v_template"], dtype=np.float64)
    parents = np.asarray(data["kintree_table"])[0].astype(np.int64)
    parents[0] = -1
    if tuple(parents) != MANO_PARENTS:
        raise UserError(f"{where} has kintree {tuple(parents)}, not MANO's 16-joint hand tree")
    posedirs = data.get("posedirs")
    mean = data.get("hands_mean", np.zeros(45))
    tips = tuple(int(i) for i in data.get("tip_vertices", MANO_TIP_VERTICES))
    if max(tips) >= len(v):
        raise UserError(f"{where} has {len(v)} vertices, too few for MANO's fingertip vertices {tips}")
    return HandArrays(
        v_template=v,
        shapedirs=np.asarray(data["shapedirs"], dtype=np.float64)[:, :, :10],
        posedirs=None if posedirs is None else np.asarray(posedirs, dtype=np.float64),
        J_regressor=np.asarray(data["J_regressor"], dtype=np.float64),
        weights=np.asarray(data["weights"], dtype=np.float64),
        faces=np.asarray(data["f"], dtype=np.int64),
        hands_mean=np.asarray(mean, dtype=np.float64).reshape(45),
        tip_vertices=tips,
        side=side,
    )


def load_mano_arrays(side: str, model_dir: Path | None, fix_left_shapedirs: bool = True) -> HandArrays:
    """Find, read, (for the left hand) fix and validate the user's MANO model."""
    path = find_mano_file(side, model_dir)
    data = read_mano_file(path)
    if side == "left" and fix_left_shapedirs:
        data = fix_left(data, path)
    return arrays_from_dict(data, side, str(path))


NPZ_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
NPZ_OPTIONAL = ("hands_components", "hands_mean", "hands_coeffs", "J", FIXED_FLAG)


def convert_mano(mano_dir: Path, out_dir: Path | None = None, fix_left_shapedirs: bool = True) -> list[Path]:
    """Write ``MANO_{RIGHT,LEFT}.npz`` (plain arrays, smplx-readable) for every pickle found in ``mano_dir``.

    The left file gets the shapedirs fix baked in (and a flag saying so) when the right pickle is present.
    """
    pkls = {side: mano_dir / f"{FILE_STEM[side]}.pkl" for side in FILE_STEM}
    found = {s: p for s, p in pkls.items() if p.is_file()}
    if not found:
        raise UserError(
            f"no MANO_RIGHT.pkl or MANO_LEFT.pkl in {mano_dir.resolve()}: download MANO from {MANO_URL} "
            "and pass the folder holding the pickles with --mano-dir"
        )
    out_dir = out_dir or mano_dir
    results: dict[Path, bytes] = {}
    for side, path in found.items():
        data = read_mano_pickle(path)
        if side == "left" and fix_left_shapedirs:
            data = fix_left(data, path)
        arrays_from_dict(data, side, str(path))  # validate before writing anything
        keep = {k: np.asarray(data[k]) for k in NPZ_KEYS + NPZ_OPTIONAL if k in data}
        import io

        buf = io.BytesIO()
        np.savez(buf, **keep)
        results[out_dir / f"{FILE_STEM[side]}.npz"] = buf.getvalue()
    for target, payload in results.items():
        atomic_write_bytes(target, payload)
    return list(results)
