"""Local crops: the box, cropping real images, and render_local agreeing with a crop of the global render."""

from __future__ import annotations

import numpy as np
import pytest
from render_helpers import H, K, W, sphere

from handsynth.data.records import LocalCrop
from handsynth.errors import UserError
from handsynth.render import (
    bbox_from_points,
    crop_box,
    crop_image,
    crop_intrinsics,
    project,
    to_global,
    to_local,
)


def test_crop_box_is_square_and_centred():
    x, y, side = crop_box([10, 20, 40, 80])
    assert side == pytest.approx(100.0)  # 1.25 * max(w, h)
    assert (x + side / 2, y + side / 2) == pytest.approx((30.0, 60.0))
    assert crop_box([10, 20, 40, 80], expand=1.0) == pytest.approx([-10.0, 20.0, 80.0])
    with pytest.raises(UserError):
        crop_box([0, 0, 0, 10])


def test_crop_image_inside_is_a_slice_and_outside_is_zero():
    rng = np.random.default_rng(0)
    img = rng.integers(1, 255, size=(60, 80, 3), dtype=np.uint8)
    for resample in ("nearest", "bilinear", "bicubic"):
        assert np.array_equal(crop_image(img, [10, 5, 32], 32, resample), img[5:37, 10:42])
    out = crop_image(img, [-8, -4, 16], 16, "nearest")
    assert not out[:4].any() and not out[:, :8].any()
    assert np.array_equal(out[4:, 8:], img[:12, :8])
    out = crop_image(img, [70, 50, 20], 20)  # past the bottom-right corner
    assert np.array_equal(out[:10, :10], img[50:, 70:]) and not out[10:].any() and not out[:, 10:].any()


def test_crop_image_nearest_matches_formula():
    # Fractional box, 16-bit single channel: nearest samples the pixel containing box_xy + (i+0.5)*s/size.
    rng = np.random.default_rng(1)
    depth = rng.integers(1, 60000, size=(50, 70), dtype=np.uint16)
    box, size = [-3.3, 7.6, 41.7], 29
    out = crop_image(depth, box, size)
    assert out.dtype == np.uint16
    centres = (
        box[0] + (np.arange(size) + 0.5) * box[2] / size,
        box[1] + (np.arange(size) + 0.5) * box[2] / size,
    )
    cols, rows = (np.floor(c).astype(int) for c in centres)
    ref = np.zeros((size, size), np.uint16)
    ok_r, ok_c = (rows >= 0) & (rows < 50), (cols >= 0) & (cols < 70)
    ref[np.ix_(ok_r, ok_c)] = depth[np.ix_(rows[ok_r], cols[ok_c])]
    assert np.array_equal(out, ref)


def test_local_mapping_matches_records_and_intrinsics():
    box, size = [31.5, -12.25, 180.0], 128
    crop = LocalCrop(box=box, size=size)
    pts = np.random.default_rng(2).uniform(-50, 300, size=(21, 2))
    assert np.allclose(to_local(pts, box, size), crop.to_local(pts))
    assert np.allclose(to_global(to_local(pts, box, size), box, size), pts)
    p3 = np.random.default_rng(3).uniform([-0.1, -0.1, 0.3], [0.1, 0.1, 0.6], size=(21, 3))
    assert np.allclose(project(p3, crop_intrinsics(K, box, size)), crop.to_local(project(p3, K)))


def test_joints_inside_image_and_bbox(scene, joints):
    for mesh, j in zip(scene[:2], joints):
        uv = project(mesh.vertices, K)
        x, y, w, h = bbox_from_points(uv, j)
        assert ((j >= 0) & (j < [W, H])).all()
        assert ((j >= [x, y]) & (j <= [x + w, y + h])).all()
        bx, by, side = crop_box([x, y, w, h])
        assert ((j > [bx, by]) & (j < [bx + side, by + side])).all()


@pytest.mark.parametrize("size", [96, 256])  # downscaled and upscaled crops
def test_render_local_agrees_with_cropped_global(renderer, scene, joints, rendered, size):
    uv = np.concatenate([project(m.vertices, K) for m in scene])
    box = crop_box(bbox_from_points(uv), expand=1.25)
    local = renderer.render_local(scene, K, box, size, joints_2d=joints)
    assert all(a.shape[:2] == (size, size) for a in local.values())
    ref = {m: crop_image(rendered[m], box, size) for m in ("seg", "depth")}
    for label in (1, 2, 3):
        a, b = local["seg"] == label, ref["seg"] == label
        iou = (a & b).sum() / (a | b).sum()
        assert iou > (0.9 if size > box[2] else 0.95), (label, iou)
    # Depth is camera z: the crop changes where, not how far.
    both = (local["seg"] == ref["seg"]) & (local["seg"] > 0)
    assert np.median(np.abs(local["depth"][both].astype(int) - ref["depth"][both])) <= 1
    # Joints drawn in the local skeleton sit where the box mapping puts them.
    for j in joints:
        for u, v in to_local(j, box, size):
            r, c = int(v), int(u)
            assert local["skeleton"][r, c].any()


def test_render_local_box_past_the_border(renderer):
    # A hand at the image corner: the crop reaches past the border. By default the part outside the
    # image is zero (like a padded crop of a photo); clip_to_image=False shows the whole sphere.
    corner_K = np.array([[300.0, 0, 0.0], [0, 310.0, 0.0], [0, 0, 1]])  # principal point at (0, 0)
    s = sphere([0.0, 0.0, 0.5], "right")
    box = crop_box(bbox_from_points(project(s.vertices, corner_K)))
    assert box[0] < 0 and box[1] < 0
    size = 64
    full = renderer.render_local([s], corner_K, box, size, maps=("seg", "depth"), clip_to_image=False)
    clipped = renderer.render_local([s], corner_K, box, size, maps=("seg", "depth"))
    ref = crop_image(renderer.render([s], corner_K, maps=("seg",))["seg"], box, size)
    disc_area = np.pi * (size / 1.25 / 2) ** 2  # the disc fills 1/1.25 of the crop's width
    assert 0.8 < (full["seg"] > 0).sum() / disc_area < 1.2
    assert 0.8 < (clipped["seg"] > 0).sum() / (disc_area / 4) < 1.2  # only the quarter inside the image
    a, b = clipped["seg"] > 0, ref > 0
    assert (a & b).sum() / (a | b).sum() > 0.95
    assert not clipped["depth"][: size // 2 - 1].any() and not clipped["depth"][:, : size // 2 - 1].any()
    # image_size says where the global image ends when rendering with a renderer of another size
    other = renderer.render_local([s], corner_K, box, size, maps=("seg",), image_size=(W // 2, H // 2))
    assert np.array_equal(other["seg"], clipped["seg"])


def test_crop_box_within_slides_inside_the_image_where_it_fits():
    # A hand at the left edge: the centred square starts at x = -5; inside, it starts at 0, same side.
    assert crop_box([0, 20, 10, 10], expand=2.0) == [-5.0, 15.0, 20.0]
    assert crop_box([0, 20, 10, 10], expand=2.0, within=(64, 64)) == [0.0, 15.0, 20.0]
    assert crop_box([55, 58, 8, 6], expand=2.0, within=(64, 64)) == [48.0, 48.0, 16.0]  # bottom-right
    inside = crop_box([20, 20, 10, 10], expand=2.0)
    assert crop_box([20, 20, 10, 10], expand=2.0, within=(64, 64)) == inside  # already inside
    # Longer than the image on one axis: centred on the image on that axis, the other slides.
    assert crop_box([0, 0, 40, 10], expand=2.0, within=(100, 50)) == [0.0, -15.0, 80.0]
    # a wide image: x slides against the width, y against the height
    assert crop_box([0, 40, 10, 10], expand=2.0, within=(100, 50)) == [0.0, 30.0, 20.0]
    assert crop_box([95, 0, 10, 10], expand=2.0, within=(100, 50)) == [80.0, 0.0, 20.0]
