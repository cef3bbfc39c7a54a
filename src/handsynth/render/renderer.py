"""One offscreen renderer for every condition map: one draw, one framebuffer, one read-back per map.

All meshes of a scene (two hands and an object) are packed into one vertex buffer and drawn with a
single call (one per mesh when a mesh has a uv texture to bind) into one framebuffer with a render target per map (mesh, normal, texture: RGBA8; seg: R8
holding label / 255; depth: R16 unorm holding millimetres / 65535, so integers come back exactly).
Each requested map is read straight into its output array, with no CPU-side repacking.

Only the targets the requested maps need are read back. A pyrender user renders one scene per map
(five renders + five read-backs, each re-uploading the meshes); that is the difference the benchmark
(``benchmarks/render.py``) measures.

Geometry follows :mod:`handsynth.pinhole`: OpenCV camera at the origin, intrinsics K, pixel
``(c, r)`` covering ``[c, c+1) x [r, r+1)``. The projection maps image row 0 to the first row
``glReadPixels`` returns, so nothing is flipped on the CPU.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from handsynth.errors import UserError
from handsynth.pinhole import check_K
from handsynth.render.context import create_context
from handsynth.render.crop import crop_intrinsics, to_local
from handsynth.render.maps import BODY_MAP, MAP_NAMES, check_maps
from handsynth.render.scene import SceneMesh, vertex_normals
from handsynth.render.skeleton import draw_skeleton

_FLOATS_PER_VERTEX = 12  # position 3, normal 3, colour 3, uv 2, label 1
TEXTURE_CACHE_SIZE = 16
NORMAL_FRAMES = {"opencv": (1.0, 1.0, 1.0), "opengl": (1.0, -1.0, -1.0)}

_VERTEX_SHADER = """
#version 330
uniform mat3 K;
uniform vec2 size;      // W, H in pixels
uniform vec2 depth_ab;  // z_ndc = (a z + b) / z maps [znear, zfar] to [-1, 1]
in vec3 in_pos;
in vec3 in_nrm;
in vec3 in_col;
in vec2 in_uv;
in float in_label;
out vec3 v_pos;
out vec3 v_nrm;
out vec3 v_col;
out vec2 v_uv;
flat out float v_label;
void main() {
    vec3 uvw = K * in_pos;  // (u z, v z, z): continuous pixel coordinates times depth
    // Window x = u, window y = v: image row 0 is the first row glReadPixels returns.
    gl_Position = vec4(2.0 * uvw.x / size.x - uvw.z, 2.0 * uvw.y / size.y - uvw.z,
                       depth_ab.x * in_pos.z + depth_ab.y, in_pos.z);
    v_pos = in_pos;
    v_nrm = in_nrm;
    v_col = in_col;
    v_uv = vec2(in_uv.x, 1.0 - in_uv.y);  // OBJ uv (origin bottom-left) -> rows stored top first
    v_label = in_label;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform vec3 normal_sign;  // (1,1,1): OpenCV camera frame; (1,-1,-1): OpenGL camera frame
uniform vec3 shading;      // mesh grey, ambient, diffuse
uniform sampler2D albedo_tex;
uniform bool use_tex;
in vec3 v_pos;
in vec3 v_nrm;
in vec3 v_col;
in vec2 v_uv;
flat in float v_label;
layout(location = 0) out vec4 out_mesh;
layout(location = 1) out vec4 out_normal;
layout(location = 2) out vec4 out_texture;
layout(location = 3) out float out_seg;
layout(location = 4) out float out_depth;
void main() {
    vec3 view = normalize(v_pos);  // camera (origin) -> surface point
    // The triangle's own normal, turned to the camera: tells whether we see a surface's back side.
    vec3 g = cross(dFdx(v_pos), dFdy(v_pos));
    g = length(g) > 0.0 ? normalize(g) : -view;
    if (dot(g, view) > 0.0) g = -g;
    float len = length(v_nrm);
    vec3 n = len > 1e-8 ? v_nrm / len : g;
    if (dot(n, g) < 0.0) n = -n;            // back side (inside an open mesh): flip the normal
    float d = dot(n, view);
    if (d > 0.0) n = n - 2.0 * d * view;    // silhouette: the smooth normal leans away; mirror it
    float lambert = max(dot(n, -view), 0.0);  // light at the camera
    float light = shading.y + shading.z * lambert;
    float grey = v_label < 2.5 ? shading.x * light : 0.0;  // objects are black occluders in `mesh`
    out_mesh = vec4(grey, grey, grey, 1.0);
    out_normal = vec4((n * normal_sign) * 0.5 + 0.5, 1.0);
    vec3 albedo = use_tex ? texture(albedo_tex, v_uv).rgb : v_col;
    out_texture = vec4(albedo * light, 1.0);
    out_seg = v_label / 255.0;
    out_depth = clamp(v_pos.z * 1000.0, 0.0, 65535.0) / 65535.0;
}
"""


@dataclass(frozen=True)
class Lighting:
    """Lambert shading with one light at the camera: value = albedo * (ambient + diffuse * cos)."""

    mesh_grey: float = 0.8
    ambient: float = 0.25
    diffuse: float = 0.75


# map -> (render target, components read back, read dtype, numpy dtype)
_TARGETS = {
    "mesh": (0, 3, "f1", np.uint8),
    "normal": (1, 3, "f1", np.uint8),
    "texture": (2, 3, "f1", np.uint8),
    "seg": (3, 1, "f1", np.uint8),
    "depth": (4, 1, "nu2", np.uint16),
}


class _Target:
    """A framebuffer of one size: one render target per GL map, plus a depth buffer."""

    def __init__(self, ctx, width: int, height: int):
        self.size = (width, height)
        self.rb = [
            ctx.renderbuffer((width, height), components=4, dtype="f1"),  # mesh
            ctx.renderbuffer((width, height), components=4, dtype="f1"),  # normal
            ctx.renderbuffer((width, height), components=4, dtype="f1"),  # texture
            ctx.renderbuffer((width, height), components=1, dtype="f1"),  # seg
            ctx.renderbuffer((width, height), components=1, dtype="nu2"),  # depth
        ]
        self.depth_rb = ctx.depth_renderbuffer((width, height))
        self.fbo = ctx.framebuffer(color_attachments=self.rb, depth_attachment=self.depth_rb)

    def release(self) -> None:
        self.fbo.release()
        for rb in [*self.rb, self.depth_rb]:
            rb.release()


class Renderer:
    """Headless renderer of all condition maps; one EGL context, reused for every frame and size.

    ``width`` x ``height`` is the size of :meth:`render`; :meth:`render_local` renders crops of any
    size with the same context. Create one per process (or per thread) and reuse it.
    """

    def __init__(
        self,
        width: int,
        height: int,
        znear: float = 0.01,
        zfar: float = 20.0,
        normal_frame: str = "opencv",
        lighting: Lighting = Lighting(),
        device_index: int | None = None,
    ):
        for name, v in (("width", width), ("height", height)):
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise UserError(f"Renderer {name} must be a positive integer, got {v!r}")
        if not 0 < znear < zfar:
            raise UserError(f"Renderer needs 0 < znear < zfar, got znear={znear}, zfar={zfar}")
        if normal_frame not in NORMAL_FRAMES:
            raise UserError(
                f"Renderer normal_frame {normal_frame!r} is unknown; use one of {tuple(NORMAL_FRAMES)}"
            )
        import moderngl

        self._mgl = moderngl
        self.width, self.height = int(width), int(height)
        self.znear, self.zfar = float(znear), float(zfar)
        self.ctx = create_context(device_index)
        with self.ctx:
            self.prog = self.ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
            self.prog["normal_sign"].value = NORMAL_FRAMES[normal_frame]
            self.prog["shading"].value = (lighting.mesh_grey, lighting.ambient, lighting.diffuse)
            a, b = (zfar + znear) / (zfar - znear), -2.0 * zfar * znear / (zfar - znear)
            self.prog["depth_ab"].value = (a, b)
            self._vbo = self.ctx.buffer(reserve=_FLOATS_PER_VERTEX * 4 * 4096)
            self._ibo = self.ctx.buffer(reserve=3 * 4 * 8192)
            self._vao = self.ctx.vertex_array(
                self.prog,
                [(self._vbo, "3f 3f 3f 2f 1f", "in_pos", "in_nrm", "in_col", "in_uv", "in_label")],
                index_buffer=self._ibo,
                index_element_size=4,
            )
        self._targets: dict[tuple[int, int], _Target] = {}
        self._textures: OrderedDict[int, tuple[np.ndarray, object]] = OrderedDict()

    @property
    def gl_renderer(self) -> str:
        """The OpenGL driver's renderer string (e.g. 'llvmpipe ...' or the GPU's name)."""
        with self.ctx:
            return self.ctx.info["GL_RENDERER"]

    # -- public API -------------------------------------------------------------------------------

    def render(
        self,
        meshes: Sequence[SceneMesh],
        K: np.ndarray,
        maps: Sequence[str] = MAP_NAMES,
        joints_2d: Sequence[np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Render ``maps`` of the scene at ``width`` x ``height`` (layouts: :mod:`handsynth.render.maps`).

        ``joints_2d`` (one (21, 2) array per hand, global pixels) is needed for the skeleton map.
        """
        return self._render(meshes, check_K(K), self.width, self.height, maps, joints_2d)

    def render_local(
        self,
        meshes: Sequence[SceneMesh],
        K: np.ndarray,
        box: Sequence[float],
        size: int,
        maps: Sequence[str] = MAP_NAMES,
        joints_2d: Sequence[np.ndarray] | None = None,
        image_size: tuple[int, int] | None = None,
        clip_to_image: bool = True,
    ) -> dict[str, np.ndarray]:
        """Render the crop ``box`` = [x, y, side] directly at ``size`` x ``size`` (sharp, no resampling).

        Equals ``crop_image(render(...)[name], box, size)`` up to resampling; ``joints_2d`` are global
        pixels and are mapped into the crop. Where the box reaches past the global image (``image_size``
        = (W, H), default this renderer's size) the crop is zero, like a padded crop of a real photo;
        ``clip_to_image=False`` shows the geometry there instead.
        """
        K_local = crop_intrinsics(check_K(K), box, size)
        local_joints = None if joints_2d is None else [to_local(j, box, size) for j in joints_2d]
        out = self._render(meshes, K_local, int(size), int(size), maps, local_joints)
        if clip_to_image:
            width, height = image_size if image_size is not None else (self.width, self.height)
            # A local pixel shows the image when its centre maps inside it (what nearest sampling reads).
            centres = (np.arange(size) + 0.5) * (float(box[2]) / size)
            col_ok = (centres + box[0] >= 0) & (centres + box[0] < width)
            row_ok = (centres + box[1] >= 0) & (centres + box[1] < height)
            if not (col_ok.all() and row_ok.all()):
                for arr in out.values():
                    arr[~row_ok] = 0
                    arr[:, ~col_ok] = 0
        return out

    def release(self) -> None:
        """Free the GL objects and the context."""
        if self.ctx is None:
            return
        with self.ctx:
            for t in self._targets.values():
                t.release()
            for _, tex in self._textures.values():
                tex.release()
            self._textures.clear()
            self._vao.release()
            self._vbo.release()
            self._ibo.release()
            self.prog.release()
        self._targets.clear()
        self.ctx.release()
        self.ctx = None

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # -- internals --------------------------------------------------------------------------------

    def _target(self, width: int, height: int) -> _Target:
        key = (width, height)
        if key not in self._targets:
            self._targets[key] = _Target(self.ctx, width, height)
        return self._targets[key]

    def _texture(self, image: np.ndarray):
        """The GL texture of an image array, cached by identity (the cache holds the array)."""
        key = id(image)
        if key in self._textures and self._textures[key][0] is image:
            self._textures.move_to_end(key)
            return self._textures[key][1]
        h, w, c = image.shape
        tex = self.ctx.texture((w, h), c, np.ascontiguousarray(image).tobytes(), alignment=1)
        tex.build_mipmaps()
        tex.filter = (self._mgl.LINEAR_MIPMAP_LINEAR, self._mgl.LINEAR)
        tex.repeat_x = tex.repeat_y = True
        self._textures[key] = (image, tex)
        while len(self._textures) > TEXTURE_CACHE_SIZE:
            self._textures.popitem(last=False)[1][1].release()
        return tex

    def _upload(self, meshes: Sequence[SceneMesh]) -> int:
        """Pack every mesh into the shared vertex/index buffers; returns the number of indices."""
        for i, m in enumerate(meshes):
            if not isinstance(m, SceneMesh):
                raise UserError(f"meshes[{i}] must be a handsynth.render.SceneMesh, got {type(m).__name__}")
        n_vert = sum(len(m.vertices) for m in meshes)
        n_idx = sum(m.faces.size for m in meshes)
        if n_idx == 0:
            return 0
        data = np.zeros((n_vert, _FLOATS_PER_VERTEX), np.float32)
        index = np.empty(n_idx, np.uint32)
        v0 = i0 = 0
        for m in meshes:
            v1, i1 = v0 + len(m.vertices), i0 + m.faces.size
            data[v0:v1, 0:3] = m.vertices
            data[v0:v1, 3:6] = vertex_normals(m.vertices, m.faces)
            data[v0:v1, 6:9] = m.albedo()
            if m.uv is not None:
                data[v0:v1, 9:11] = m.uv
            data[v0:v1, 11] = m.label_id
            index[i0:i1] = m.faces.reshape(-1) + v0
            v0, i0 = v1, i1
        for buf, arr in ((self._vbo, data), (self._ibo, index)):
            if buf.size < arr.nbytes:
                buf.orphan(max(arr.nbytes, 2 * buf.size))
            buf.write(arr)
        return n_idx

    def _render(
        self,
        meshes: Sequence[SceneMesh],
        K: np.ndarray,
        width: int,
        height: int,
        maps: Sequence[str],
        joints_2d: Sequence[np.ndarray] | None,
    ) -> dict[str, np.ndarray]:
        maps = check_maps(maps)
        if BODY_MAP in maps:
            raise UserError("the body map needs a record's body data: render it with ConditionRenderer")
        if self.ctx is None:
            raise UserError("this Renderer was released; create a new one")
        if "skeleton" in maps and joints_2d is None:
            raise UserError("the skeleton map needs joints_2d (one (21, 2) array per hand)")
        out: dict[str, np.ndarray] = {}
        if any(m != "skeleton" for m in maps):
            self._draw(meshes, K, width, height, maps, out)
        if "skeleton" in maps:
            out["skeleton"] = draw_skeleton(joints_2d, width, height)
        return {m: out[m] for m in maps}

    def _draw(self, meshes, K, width, height, maps, out) -> None:
        mgl = self._mgl
        with self.ctx:
            n_idx = self._upload(meshes)
            t = self._target(width, height)
            t.fbo.use()
            t.fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            self.ctx.enable(mgl.DEPTH_TEST)
            self.ctx.disable(mgl.CULL_FACE | mgl.BLEND)
            if n_idx:
                self.prog["K"].write(np.ascontiguousarray(K.T, dtype=np.float32).tobytes())
                self.prog["size"].value = (float(width), float(height))
                if all(m.texture is None for m in meshes):
                    self.prog["use_tex"].value = False
                    self._vao.render(mgl.TRIANGLES, vertices=n_idx)  # the whole scene in one draw
                else:  # one draw per mesh, each with its own texture
                    first = 0
                    for m in meshes:
                        self.prog["use_tex"].value = m.texture is not None
                        if m.texture is not None:
                            self._texture(m.texture).use(location=0)
                            self.prog["albedo_tex"].value = 0
                        if m.faces.size:
                            self._vao.render(mgl.TRIANGLES, vertices=m.faces.size, first=first)
                        first += m.faces.size
            for name in maps:
                if name in _TARGETS:
                    attachment, components, read_dtype, dtype = _TARGETS[name]
                    shape = (height, width, components) if components > 1 else (height, width)
                    out[name] = np.empty(shape, dtype)
                    t.fbo.read_into(out[name], components=components, attachment=attachment, dtype=read_dtype)
