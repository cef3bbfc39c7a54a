"""Cross-check against an independent renderer: pyrender's scene-per-map maps of the same scene."""

from __future__ import annotations

import numpy as np
import pytest
from render_helpers import H, K, W, decode_normals

pytest.importorskip("pyrender")


@pytest.fixture(scope="module")
def reference(scene, joints):
    from handsynth.render.pyrender_ref import PyrenderSceneRenderer

    ref = PyrenderSceneRenderer(W, H)
    out = ref.render(scene, K, joints_2d=joints)
    ref.release()
    return out


def test_same_layouts(reference, rendered):
    for name, arr in rendered.items():
        assert reference[name].shape == arr.shape and reference[name].dtype == arr.dtype


def test_seg_and_depth_agree_with_pyrender(reference, rendered):
    from scipy.ndimage import binary_erosion

    # pyrender renders SEG without MSAA: same projection and pixel convention -> the same raster.
    assert np.mean(rendered["seg"] == reference["seg"]) > 0.999
    # Its depth comes from a resolved 4x MSAA buffer, so compare away from label edges.
    inner = np.zeros_like(rendered["seg"], bool)
    for label in (1, 2, 3):
        inner |= binary_erosion((rendered["seg"] == label) & (reference["seg"] == label), iterations=2)
    assert inner.sum() > 2000
    diff = np.abs(rendered["depth"][inner].astype(int) - reference["depth"][inner])
    # (its depth samples sit off the pixel centre, so steep surfaces differ by a millimetre or two)
    assert np.median(diff) == 0 and np.mean(diff <= 1) > 0.99 and diff.max() <= 3


def test_normals_agree_with_pyrender(reference, rendered):
    fg = (rendered["seg"] > 0) & (reference["seg"] > 0)
    a = decode_normals(rendered["normal"])[fg]
    b = decode_normals(reference["normal"])[fg]
    b /= np.linalg.norm(b, axis=-1, keepdims=True)  # pyrender interpolates colours without renormalising
    cos = np.einsum("ij,ij->i", a, b)
    assert np.median(cos) > 0.999 and np.mean(cos > 0.99) > 0.95


def test_skeleton_is_shared(reference, rendered):
    assert np.array_equal(reference["skeleton"], rendered["skeleton"])


def test_uv_texture_agrees_with_pyrender(renderer):
    from test_render_maps import QUADRANTS, _px, _textured_quad

    from handsynth.render import SceneMesh, project
    from handsynth.render.pyrender_ref import PyrenderSceneRenderer

    v, f, uv, tex = _textured_quad()
    quad = SceneMesh(v, f, "object", uv=uv, texture=tex)
    ref = PyrenderSceneRenderer(W, H)
    b = ref.render([quad], K, maps=("texture",))["texture"]
    ref.release()
    a = renderer.render([quad], K, maps=("texture",))["texture"]
    for (x, y), rgb in QUADRANTS.items():
        p = _px(project([x, y, 0.5], K))
        assert ((a[p] > 100) == np.array(rgb, bool)).all(), a[p]
        assert ((b[p] > 100) == np.array(rgb, bool)).all(), b[p]


def test_pyrender_cleanup_leaves_our_context_working(renderer, scene, rendered):
    # pyrender's own cleanup calls eglTerminate, which breaks every EGL context in the process;
    # PyrenderSceneRenderer's release (also run on garbage collection) must not.
    import gc

    from handsynth.render.pyrender_ref import PyrenderSceneRenderer

    for explicit in (True, False):
        ref = PyrenderSceneRenderer(W, H)
        ref.render(scene, K, maps=("seg",))
        if explicit:
            ref.release()
        del ref
        gc.collect()
        again = renderer.render(scene, K, maps=("seg", "depth"))
        assert np.array_equal(again["seg"], rendered["seg"]) and np.array_equal(
            again["depth"], rendered["depth"]
        )
