"""Geometry of the rendered maps against closed-form spheres: labels, masks, depth, normals, shading."""

from __future__ import annotations

import numpy as np
import pytest
from render_helpers import BOX_C, LEFT_C, RADIUS, RIGHT_C, H, K, W, decode_normals, ray_sphere, rays, sphere

from handsynth.errors import UserError
from handsynth.render import MAP_NAMES, Lighting, Renderer, SceneMesh, project
from handsynth.render.context import APT_HINT, RenderContextError


def _px(uv):
    """Continuous pixel coordinates -> (row, col) of the pixel containing them."""
    return int(np.floor(uv[1])), int(np.floor(uv[0]))


def test_layouts(rendered):
    assert list(rendered) == list(MAP_NAMES)
    for name in ("mesh", "normal", "texture", "skeleton"):
        assert rendered[name].shape == (H, W, 3) and rendered[name].dtype == np.uint8
    assert rendered["seg"].shape == (H, W) and rendered["seg"].dtype == np.uint8
    assert rendered["depth"].shape == (H, W) and rendered["depth"].dtype == np.uint16


def test_seg_labels_and_occlusion(rendered):
    seg = rendered["seg"]
    assert set(np.unique(seg)) == {0, 1, 2, 3}
    assert seg[_px(project(RIGHT_C + [-0.02, -0.02, 0], K))] == 1
    assert seg[_px(project(LEFT_C + [0.02, -0.02, 0], K))] == 2
    # The box sits in front of the spheres: its centre pixel shows the object, not a hand.
    assert seg[_px(project(BOX_C, K))] == 3
    assert seg[0, 0] == 0 and seg[-1, -1] == 0


def test_masks_agree(rendered):
    fg = rendered["seg"] > 0
    assert np.array_equal(rendered["depth"] > 0, fg)
    assert np.array_equal(rendered["normal"].max(-1) > 0, fg)
    assert np.array_equal(rendered["texture"].max(-1) > 0, fg)
    mesh = rendered["mesh"]
    assert np.array_equal(mesh[..., 0], mesh[..., 1]) and np.array_equal(mesh[..., 0], mesh[..., 2])
    # The mesh map shows the hands only; the object is a black occluder.
    assert np.array_equal(mesh[..., 0] > 0, np.isin(rendered["seg"], (1, 2)))


def test_depth_matches_ray_sphere(rendered):
    dirs = rays(K, W, H)
    for center, label in ((RIGHT_C, 1), (LEFT_C, 2)):
        t, disc = ray_sphere(dirs, center, RADIUS)
        inner = (disc > 0.2 * RADIUS**2) & (rendered["seg"] == label)  # away from the silhouette
        assert inner.sum() > 500
        z_mm = (t * dirs[..., 2])[inner] * 1000
        assert np.abs(rendered["depth"][inner] - z_mm).max() < 1.0


def test_normals_unit_facing_and_match_sphere(rendered):
    n = decode_normals(rendered["normal"])
    fg = rendered["seg"] > 0
    dirs = rays(K, W, H)
    length = np.linalg.norm(n[fg], axis=-1)
    assert np.abs(length - 1).max() < 0.012  # 8-bit quantisation only
    assert (np.einsum("ij,ij->i", n[fg], dirs[fg]) <= 0.01).all()  # every normal faces the camera
    for center, label in ((RIGHT_C, 1), (LEFT_C, 2)):
        t, disc = ray_sphere(dirs, center, RADIUS)
        inner = (disc > 0.05 * RADIUS**2) & (rendered["seg"] == label)
        true_n = (t[..., None] * dirs - center)[inner] / RADIUS
        cos = np.einsum("ij,ij->i", n[inner] / np.linalg.norm(n[inner], axis=-1, keepdims=True), true_n)
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 2.0


def test_mesh_is_lambert_with_light_at_camera(rendered):
    light = Lighting()
    dirs = rays(K, W, H)
    t, disc = ray_sphere(dirs, RIGHT_C, RADIUS)
    inner = (disc > 0.05 * RADIUS**2) & (rendered["seg"] == 1)
    true_n = (t[..., None] * dirs - RIGHT_C)[inner] / RADIUS
    cos = -np.einsum("ij,ij->i", true_n, dirs[inner])
    expected = 255 * light.mesh_grey * (light.ambient + light.diffuse * cos)
    assert np.abs(rendered["mesh"][..., 0][inner] - expected).max() <= 3
    # texture: the default skin albedo under the same light
    from handsynth.render.scene import DEFAULT_SKIN

    expected_r = 255 * DEFAULT_SKIN[0] * (light.ambient + light.diffuse * cos)
    assert np.abs(rendered["texture"][..., 0][inner] - expected_r).max() <= 3


def test_pixel_convention_centroid(renderer):
    # A sphere on the optical axis projects to a disc centred on (cx, cy) in continuous coordinates,
    # where pixel (c, r) has its centre at (c + 0.5, r + 0.5).
    for cx, cy in ((160.0, 120.0), (150.25, 101.75)):
        K2 = np.array([[300.0, 0, cx], [0, 300.0, cy], [0, 0, 1]])
        seg = renderer.render([sphere([0, 0, 0.5], "right")], K2, maps=("seg",))["seg"]
        rows, cols = np.nonzero(seg)
        assert abs(cols.mean() + 0.5 - cx) < 0.05 and abs(rows.mean() + 0.5 - cy) < 0.05


def test_subset_and_order(renderer, scene, rendered):
    out = renderer.render(scene, K, maps=("depth", "seg"))
    assert list(out) == ["depth", "seg"]
    assert np.array_equal(out["depth"], rendered["depth"]) and np.array_equal(out["seg"], rendered["seg"])
    assert list(renderer.render(scene, K, maps="normal")) == ["normal"]


def test_empty_scene_is_black(renderer):
    out = renderer.render([], K, maps=("mesh", "seg", "depth"))
    assert all(not a.any() for a in out.values())


def test_vertex_colors_and_color(renderer):
    red = sphere([0, 0, 0.5], "object", vertex_colors=np.tile([1.0, 0.0, 0.0], (2562, 1)))
    tex = renderer.render([red], K, maps=("texture",))["texture"]
    fg = tex.max(-1) > 0
    assert fg.sum() > 1000 and (tex[fg][:, 1:] == 0).all() and (tex[fg][:, 0] > 0).all()
    green = sphere([0, 0, 0.5], "left", color=(0.0, 1.0, 0.0))
    tex = renderer.render([green], K, maps=("texture",))["texture"]
    fg = tex.max(-1) > 0
    assert (tex[fg][:, [0, 2]] == 0).all() and (tex[fg][:, 1] > 0).all()


def test_inside_of_open_mesh_faces_camera(renderer):
    # Remove the sphere's front half: the camera sees the inside of the back half, whose outward
    # normals point away. The map must flip them towards the camera (towards the sphere centre).
    s = sphere([0, 0, 0.5], "right")
    keep = s.vertices[s.faces].mean(axis=1)[:, 2] > 0.5
    bowl = SceneMesh(s.vertices, s.faces[keep], "right")
    out = renderer.render([bowl], K, maps=("normal", "seg"))
    fg = out["seg"] > 0
    n = decode_normals(out["normal"])[fg]
    dirs = rays(K, W, H)[fg]
    assert fg.sum() > 1000
    assert (np.einsum("ij,ij->i", n, dirs) < 0.01).all()
    # Near the image centre the inner surface's normal points back at the camera: n ~ (0, 0, -1).
    r, c = _px(project([0, 0, 0.54], K))
    assert decode_normals(out["normal"][r, c])[2] < -0.95


def test_opengl_normal_frame_and_two_contexts(renderer, scene, rendered):
    with Renderer(W, H, normal_frame="opengl") as gl:
        n_gl = decode_normals(gl.render(scene, K, maps=("normal",))["normal"])
        # the first renderer still works after another context was made current
        again = renderer.render(scene, K, maps=("normal",))["normal"]
    assert np.array_equal(again, rendered["normal"])
    fg = rendered["seg"] > 0
    n_cv = decode_normals(rendered["normal"])
    assert np.abs(n_gl[fg] - n_cv[fg] * [1, -1, -1]).max() < 0.01


def test_user_errors(renderer, scene):
    with pytest.raises(UserError, match="3x3"):
        renderer.render(scene, np.eye(2))
    with pytest.raises(UserError, match="fx,fy>0"):
        renderer.render(scene, np.diag([-1.0, 1.0, 1.0]))
    with pytest.raises(UserError, match="unknown condition map"):
        renderer.render(scene, K, maps=("mesh", "albedo"))
    with pytest.raises(UserError, match="joints_2d"):
        renderer.render(scene, K, maps=("skeleton",))
    with pytest.raises(UserError, match="label"):
        SceneMesh(np.zeros((3, 3)), [[0, 1, 2]], "hand")
    with pytest.raises(UserError, match="index vertices"):
        SceneMesh(np.zeros((3, 3)), [[0, 1, 3]], "right")
    with pytest.raises(UserError, match="vertex_colors"):
        SceneMesh(np.zeros((3, 3)), [[0, 1, 2]], "right", vertex_colors=np.zeros((2, 3)))
    with pytest.raises(UserError, match="SceneMesh"):
        renderer.render([np.zeros((3, 3))], K, maps=("seg",))


def test_egl_failure_names_the_packages(monkeypatch):
    import moderngl

    def fail(**kwargs):
        raise moderngl.Error("eglGetDisplay failed")

    monkeypatch.setattr(moderngl, "create_standalone_context", fail)
    with pytest.raises(RenderContextError) as e:
        Renderer(8, 8)
    assert APT_HINT in str(e.value) and "libegl1 libegl-mesa0 libgl1-mesa-dri" in APT_HINT
    assert isinstance(e.value, UserError)


def test_vertex_normals_formula():
    from handsynth.render import vertex_normals

    s = sphere([0, 0, 0], "right", subdivisions=3)
    v, f = s.vertices.astype(np.float64), s.faces.astype(int)
    ref = np.zeros_like(v)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])  # area-weighted face normals
    for k in range(3):
        np.add.at(ref, f[:, k], fn)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    n = vertex_normals(v, f)
    assert np.abs(n - ref).max() < 1e-6
    assert np.abs(n - v / np.linalg.norm(v, axis=1, keepdims=True)).max() < 0.02  # a sphere's are radial
    lone = vertex_normals(np.vstack([v, [[1.0, 1.0, 1.0]]]), f)
    assert not lone[-1].any()  # a vertex without faces gets no normal


def _textured_quad():
    """A 10 cm square facing the camera; its texture's quadrants are red, green / blue, white."""
    tex = np.zeros((64, 64, 3), np.uint8)
    tex[:32, :32] = (255, 0, 0)
    tex[:32, 32:] = (0, 255, 0)
    tex[32:, :32] = (0, 0, 255)
    tex[32:, 32:] = (255, 255, 255)
    v = np.array([[-0.05, -0.05, 0.5], [0.05, -0.05, 0.5], [0.05, 0.05, 0.5], [-0.05, 0.05, 0.5]])
    uv = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])  # OBJ: v = 1 is the image's top
    return v, np.array([[0, 2, 1], [0, 3, 2]]), uv, tex  # wound to face the camera (pyrender culls)


QUADRANTS = {(-0.025, -0.025): (1, 0, 0), (0.025, -0.025): (0, 1, 0), (-0.025, 0.025): (0, 0, 1)}


def test_uv_texture_orientation(renderer):
    v, f, uv, tex = _textured_quad()
    out = renderer.render([SceneMesh(v, f, "object", uv=uv, texture=tex)], K, maps=("texture",))["texture"]
    for (x, y), rgb in QUADRANTS.items():  # image top-left (x<0, y<0 in OpenCV) shows the texture's top-left
        px = out[_px(project([x, y, 0.5], K))]
        assert ((px > 100) == np.array(rgb, bool)).all(), (x, y, px)
    px = out[_px(project([0.025, 0.025, 0.5], K))]
    assert (px > 100).all()
    # the same through trimesh's TextureVisuals, and mixed with untextured meshes in one scene
    import trimesh
    from PIL import Image

    tm = trimesh.Trimesh(
        v, f, visual=trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(tex)), process=False
    )
    scene = [sphere([0.12, 0.0, 0.7], "right"), SceneMesh.from_trimesh(tm, "object")]
    mixed = renderer.render(scene, K, maps=("texture", "seg"))
    assert np.array_equal(mixed["texture"][mixed["seg"] == 3], out[mixed["seg"] == 3])
    assert (mixed["seg"] == 1).sum() > 500  # an untextured mesh beside it, same frame
    with pytest.raises(UserError, match="both uv and texture"):
        SceneMesh(v, f, "object", uv=uv)


def test_16_bit_depth_reads_near_bright_far_dark_background_black():
    """condition_image: 255 - 200 (z - near) / (far - near) on the hand, 0 elsewhere (worked by hand)."""
    import numpy as np
    from PIL import Image

    from handsynth.render.maps import condition_image

    z = np.array([[500, 1000], [750, 0]], np.uint16)
    got = np.asarray(condition_image("depth", Image.fromarray(z), 2, 2))
    assert got.shape == (2, 2, 3) and (got == got[..., :1]).all()
    np.testing.assert_array_equal(got[..., 0], [[255, 55], [155, 0]])
