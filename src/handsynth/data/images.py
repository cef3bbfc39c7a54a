"""Image files a record names, opened defensively: empty, corrupt or oversized files are user errors.

Why: a zero-byte PNG from a full disk, a truncated download or a decompression bomb (a small file
that decodes to gigapixels) used to end a run with a PIL traceback, or fill the memory. Here each
problem is one sentence naming the record and the file, found before any model is loaded.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from handsynth.cli_args import MAX_IMAGE_SIDE
from handsynth.errors import UserError

MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE


def _problem(path: Path, where: str, why: str) -> UserError:
    return UserError(f"{where}: image file {path} {why}; replace the file or remove the record")


def check_image(path: str | Path, where: str) -> tuple[int, int]:
    """Open and verify ``path`` (header, size, checksums) without decoding it; returns (width, height)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise _problem(path, where, "is empty (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                size = im.size
                if size[0] * size[1] > MAX_IMAGE_PIXELS:
                    raise _problem(
                        path, where, f"is {size[0]}x{size[1]} pixels, more than {MAX_IMAGE_SIDE}² allows"
                    )
                im.verify()
    except FileNotFoundError:
        raise _problem(path, where, "does not exist") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _problem(path, where, "decodes to too many pixels (a decompression bomb?)") from None
    except UnidentifiedImageError:
        raise _problem(path, where, "is not an image PIL can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise _problem(path, where, f"is corrupt ({err})") from None
    return size


def load_rgb(path: str | Path, where: str) -> Any:
    """The image at ``path`` as an RGB PIL image, after :func:`check_image`."""
    from PIL import Image

    check_image(path, where)
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, SyntaxError, ValueError) as err:
        raise _problem(Path(path), where, f"is corrupt ({err})") from None
