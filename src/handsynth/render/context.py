"""The headless OpenGL context: moderngl over EGL (Mesa llvmpipe on a CPU, the vendor driver on a GPU).

moderngl talks to EGL through glcontext, so ``PYOPENGL_PLATFORM`` does not matter to it; we still set
it to ``egl`` (if unset) so that pyrender/PyOpenGL imported later in the same process pick EGL too.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from handsynth.errors import UserError

if TYPE_CHECKING:
    import moderngl

APT_HINT = "sudo apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri"


class RenderContextError(UserError):
    """No offscreen OpenGL context could be created (missing EGL libraries or driver)."""


def create_context(device_index: int | None = None) -> moderngl.Context:
    """A standalone OpenGL >= 3.3 context on EGL; ``device_index`` picks a GPU among EGL devices."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    try:
        import moderngl
    except ImportError as e:  # pragma: no cover - moderngl is a core dependency
        raise RenderContextError(f"moderngl is not importable ({e}); reinstall handsynth") from e
    kwargs = {"backend": "egl", "require": 330}
    if device_index is not None:
        kwargs["device_index"] = int(device_index)
    try:
        return moderngl.create_standalone_context(**kwargs)
    except Exception as e:
        raise RenderContextError(
            f"could not create a headless EGL OpenGL context ({type(e).__name__}: {e}); on Debian/Ubuntu "
            f"install the EGL and Mesa drivers with `{APT_HINT}` (on NVIDIA GPUs the driver's libEGL_nvidia)"
        ) from e
