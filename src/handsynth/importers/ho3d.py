"""HO-3D v2 / v3 (Hampali et al. 2020): a right hand holding a YCB object, MANO fits in an OpenGL camera.

Layout: ``{train,evaluation}/{SEQ}/rgb/{0000}.png`` (v2) or ``.jpg`` (v3), ``meta/{0000}.pkl``, and the
frame lists ``train.txt`` / ``evaluation.txt`` (lines ``SEQ/0000``). Training metas hold ``handPose``
(48, axis-angle, global first), ``handBeta``, ``handTrans``, ``handJoints3D`` (16 MANO joints + 5 tips),
``camMat`` and the object pose (``objRot``, ``objTrans``, ``objName``), all in an OpenGL camera frame
(y up, z towards the viewer): ``diag(1, -1, -1)`` maps them to OpenCV, for MANO through
:meth:`HandKit.rigid`. The authors' code poses MANO with ``flat_hand_mean=True``. The fingertips of
``handJoints3D`` are other MANO vertices than smplx's, so the check compares the 16 kinematic joints.
Evaluation metas have only the hand box and root, so those frames get ``hands: []`` and
``unlabelled_hands``.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Iterator

import numpy as np

from handsynth.hand.joints import opengl_to_opencv, to_openpose
from handsynth.importers.base import Frame, Importer, RawHand

GL_TO_CV = np.diag([1.0, -1.0, -1.0])


def read_meta(path) -> dict:
    """A HO3D meta pickle (written by Python 2; latin-1 keeps its numpy arrays readable)."""
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def object_pose(meta: dict) -> np.ndarray:
    """The object's model->camera pose ``[R | t]`` (3x4) in the OpenCV frame."""
    from scipy.spatial.transform import Rotation

    R = Rotation.from_rotvec(np.asarray(meta["objRot"], dtype=np.float64).reshape(3)).as_matrix()
    t = np.asarray(meta["objTrans"], dtype=np.float64).reshape(3)
    return np.concatenate([GL_TO_CV @ R, (GL_TO_CV @ t)[:, None]], axis=1)


class HO3D(Importer):
    name = "ho3d"
    title = "HO3D"
    layout = (
        "ROOT/{train,evaluation}.txt and ROOT/{train,evaluation}/{SEQ}/rgb/{0000}.png|jpg + meta/{0000}.pkl"
    )
    splits = ("train", "evaluation")
    default_split = "train"
    flat_hand_mean = True
    # handJoints3D's fingertips are MANO vertices 728, 353, 442, 576, 694 (HOnnotate's MANO layer), not
    # smplx's 744, 320, 443, 554, 671: the check compares the 16 kinematic joints.
    check_tips = False

    def __init__(self, opts) -> None:
        super().__init__(opts)
        self.needs_hand_model = self.split == "train"  # evaluation frames carry no hand pose

    def check(self) -> None:
        self.need(f"{self.split}.txt")
        for name in self._names()[:1]:
            seq, frame = name.split("/")
            self.need(f"{self.split}/{seq}/meta/{frame}.pkl")

    def _names(self) -> list[str]:
        lines = self.need(f"{self.split}.txt").read_text().split()
        return [line.strip() for line in lines if line.strip()]

    def count(self) -> int:
        return len(self._names())

    def _mesh(self, name: str) -> str | None:
        if self.opts.objects is None:
            return None
        return str((self.opts.objects / name / "textured_simple.obj").resolve())

    def frames(self, skipped: Counter) -> Iterator[Frame]:
        for name in self._names():
            seq, frame = name.split("/")
            folder = self.root / self.split / seq
            meta_path = folder / "meta" / f"{frame}.pkl"
            if not meta_path.exists():
                raise self.missing(meta_path)
            image = next(
                (p for p in (folder / "rgb" / f"{frame}{e}" for e in (".png", ".jpg")) if p.exists()), None
            )
            if image is None:
                raise self.missing(folder / "rgb" / f"{frame}.png (v2) or .jpg (v3)")
            meta = read_meta(meta_path)
            K = np.asarray(self.key(meta, "camMat", meta_path), dtype=np.float64)
            fields: dict = {"sequence": {"id": f"{self.split}/{seq}", "frame": int(frame)}}
            if meta.get("objName") is not None and meta.get("objRot") is not None:
                obj = {"name": str(meta["objName"]), "pose": object_pose(meta).tolist()}
                mesh = self._mesh(obj["name"])
                if mesh:
                    obj["mesh"] = mesh
                fields["objects"] = [obj]
            hands = []
            if self.split == "evaluation":
                x0, y0, x1, y1 = (float(v) for v in self.key(meta, "handBoundingBox", meta_path))
                root = opengl_to_opencv(
                    np.asarray(self.key(meta, "handJoints3D", meta_path), float).reshape(3)
                )
                fields["unlabelled_hands"] = [
                    {"side": "right", "bbox": [x0, y0, x1 - x0, y1 - y0], "root_3d": root.tolist()}
                ]
            else:
                if meta.get("handPose") is None:
                    skipped["frame: no hand pose (v3)"] += 1
                    continue
                pose = np.asarray(meta["handPose"], dtype=np.float64).reshape(48)
                betas = np.asarray(self.key(meta, "handBeta", meta_path), dtype=np.float64).reshape(10)
                trans = np.asarray(self.key(meta, "handTrans", meta_path), dtype=np.float64).reshape(3)
                go, transl = self.hands.rigid("right", GL_TO_CV, np.zeros(3), pose[:3], trans, betas)
                joints = np.asarray(self.key(meta, "handJoints3D", meta_path), dtype=np.float64).reshape(
                    21, 3
                )
                own = to_openpose(opengl_to_opencv(joints), "ho3d")
                hands.append(RawHand("right", go, pose[3:], betas, transl, joints=own))
            yield Frame(
                id=f"ho3d_{self.split}_{seq}_{frame}",
                image=image,
                K=K,
                hands=hands,
                fields=fields,
                source={"original": f"{self.split}/{seq}/rgb/{image.name}"},
            )


IMPORTER = HO3D
