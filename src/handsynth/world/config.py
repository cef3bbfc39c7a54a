"""The settings of one world dataset (:class:`WorldConfig`), its domains and record ids.

Apart from the generator (:mod:`handsynth.world.scene`) so that reading them (``handsynth world render
--help``, a folder's settings) does not import torch and the renderer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from handsynth.errors import UserError
from handsynth.world import backgrounds, captions, hold, skin

DOMAINS = ("lab", "wild", *hold.HO_DOMAINS)
# Each domain's number in the random seed of its samples (fixed: changing it changes every world photo).
DOMAIN_SEED_CODE = {"lab": 1, "wild": 2, "holab": 3, "howild": 4}
# The look (background, lights, degradations, captions) each domain borrows; the arm's direction.
LOOK = {"lab": "lab", "wild": "wild", "holab": "lab", "howild": "wild"}
ARM_DOMAIN = {"lab": "lab", "wild": "wild", "holab": "wild", "howild": "wild"}  # people at a table
ARM_MODELS = ("anatomical", "free")
DEFAULT_OBJECT_PROBABILITY = {"lab": 0.0, "wild": 0.6, "holab": 1.0, "howild": 1.0}
# Hand + object box side / image side of the hand-object domains (the object must fit in the frame).
HO_HAND_FRACTION = {"holab": (0.5, 0.7), "howild": (0.35, 0.6)}
SLEEVE_COLORS = {"lab": ("black", "grey", "blue"), "wild": tuple(backgrounds.COLORS)}
TABLE_COLORS = {"lab": ("grey",), "wild": tuple(backgrounds.COLORS)}


@dataclass
class WorldConfig:
    """Settings of one world dataset (stored in the folder's ``handsynth_run.json``)."""

    domain: str = "wild"
    size: int = 128
    seed: int = 0
    maps: tuple[str, ...] = ("mesh", "seg")  # condition maps rendered per sample (global and local)
    local: bool = True  # render local (hand crop) maps and store the local RGB crop
    local_size: int | None = None  # default: size
    hand_model: str = "openhand"
    model_dir: str | None = None  # MANO folder when hand_model == "mano"
    object_probability: float | None = None  # default: 0 (lab), 0.6 (wild)
    supersample: int = 2  # photo rendered at this factor and box-filtered: anti-aliased edges
    expand: float = 1.25  # local crop side = expand * longest side of the hand box
    # "inside": the local crop slides inside the photo where it fits; "centred": centred on the hand,
    # padded with black past the photo's edge (before 2026-11-29; guidance modules trained on such
    # crops drew a black frame around their images, docs/micro.md)
    local_crop: str = "inside"
    hand_fraction: tuple[float, float] | None = None  # hand box side / image side; default per domain
    poses: str | None = None  # records (folder or .jsonl) whose hands, camera and placement are reused
    caption_style: str = "short"  # "verbose": also a VLM-like multi-sentence `caption` (prompt unchanged)
    sequence_length: int = 1  # hand-object domains: frames per sequence (object resting, then lifted)
    subjects: str = "all"  # holab: "train" / "test" = the seen / held-out subjects (skin tone + shape)
    backgrounds: int = 0  # > 0: every image picks one of this many fixed backgrounds (shared by all seeds)
    # "free": any roll about the forearm; "anatomical": in wild, the elbow leans out to the hand's side
    # and the palm turns at most camera.PALM_TURN_LIMIT_DEG from facing the body's midline. Anatomical
    # arms did not make side readable at 64 px (benchmarks/results/micro_side_visibility.md), so the
    # default stays free and earlier worlds stay reproducible.
    arm_model: str = "free"
    # "subtle": palms a little lighter than backs; "strong": clearly lighter, pinker palms and darker
    # backs (skin.PALM_CONTRASTS). Strong palms did not make side readable at 64 px either
    # (micro_side_visibility.md), so the default stays subtle and earlier worlds stay reproducible.
    palm_contrast: str = "subtle"

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise UserError(f"world domain {self.domain!r} is unknown; use one of {DOMAINS}")
        if not isinstance(self.size, int) or self.size < 32:
            raise UserError(f"world image size must be an integer >= 32, got {self.size!r}")
        if self.object_probability is None:
            self.object_probability = DEFAULT_OBJECT_PROBABILITY[self.domain]
        if not 0.0 <= self.object_probability <= 1.0:
            raise UserError(f"object probability must be in [0, 1], got {self.object_probability}")
        if self.caption_style not in captions.CAPTION_STYLES:
            raise UserError(
                f"caption style {self.caption_style!r} is unknown; use one of {captions.CAPTION_STYLES}"
            )
        ho = self.domain in hold.HO_DOMAINS
        if ho and self.object_probability != 1.0:
            raise UserError(f"--domain {self.domain} always has an object in the hand; drop --object-prob")
        if ho and self.poses and self.sequence_length > 1:
            raise UserError(
                "--poses gives one photo per record; drop --sequence-length "
                f"{self.sequence_length} (the record says whether its hand is grasping)"
            )
        if not isinstance(self.sequence_length, int) or self.sequence_length < 1:
            raise UserError(f"--sequence-length must be a positive integer, got {self.sequence_length!r}")
        if self.sequence_length > 1 and not ho:
            raise UserError(
                f"--sequence-length needs a hand-object domain ({', '.join(hold.HO_DOMAINS)}), not {self.domain}"
            )
        if self.subjects not in hold.SUBJECT_SPLITS:
            raise UserError(f"--subjects {self.subjects!r} is unknown; use one of {hold.SUBJECT_SPLITS}")
        if self.subjects != "all" and self.domain != "holab":
            raise UserError(
                f"--subjects {self.subjects} splits holab's subjects; --domain {self.domain} has none"
            )
        if not isinstance(self.backgrounds, int) or self.backgrounds < 0:
            raise UserError(
                f"--backgrounds must be a count >= 0 (0: a new one per image), got {self.backgrounds!r}"
            )
        if self.local_crop not in ("inside", "centred"):
            raise UserError(f"local crop must be 'inside' or 'centred', got {self.local_crop!r}")
        if self.arm_model not in ARM_MODELS:
            raise UserError(f"arm model must be one of {ARM_MODELS}, got {self.arm_model!r}")
        if self.palm_contrast not in skin.PALM_CONTRASTS:
            raise UserError(f"palm contrast must be one of {skin.PALM_CONTRASTS}, got {self.palm_contrast!r}")
        if self.supersample not in (1, 2, 3, 4):
            raise UserError(f"supersample must be 1, 2, 3 or 4, got {self.supersample}")
        self.maps = tuple(self.maps)
        if self.hand_fraction is not None:
            lo, hi = (float(x) for x in self.hand_fraction)
            if not 0.05 <= lo <= hi <= 1.0:
                raise UserError(f"hand fraction must be 0.05 <= low <= high <= 1, got {self.hand_fraction}")
            self.hand_fraction = (lo, hi)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["maps"] = list(self.maps)
        if self.hand_fraction is not None:
            d["hand_fraction"] = list(self.hand_fraction)
        if self.caption_style == "short":
            del d["caption_style"]  # folders written before the option resume unchanged
        d["stage"] = "world"
        for key, default in (("sequence_length", 1), ("subjects", "all"), ("backgrounds", 0)):
            if d[key] == default:  # folders written before these settings existed still resume
                del d[key]
        return d


def sample_id(domain: str, index: int) -> str:
    """The record id of sample ``index`` of ``domain`` (e.g. ``wild_000042``)."""
    return f"{domain}_{index:06d}"
