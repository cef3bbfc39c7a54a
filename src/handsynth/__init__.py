"""handsynth: photo-realistic hand images with exact 3D labels.

Stages, in data-flow order: hand -> render -> text -> diffusion/methods -> generate -> data -> eval/recon.
Each method lives in its own folder, ``methods/<name>/``, and is found through one registry
(``methods/registry.py``). ``world/`` and ``micro/`` are the project's laboratory (a procedural photo
world and the micro benchmark that trains small bases and methods to test the papers' claims), not
pipeline stages. Layout, layers and the import rule: docs/contributing.md.

The entry points a script needs are importable from here, lazily (``import handsynth`` stays cheap):
:func:`load_hand_model`, :class:`Renderer`, :func:`render_dataset`, :func:`read_dataset`,
:class:`JobConfig` / :func:`run_job` / :class:`Dist` (the generation job), :class:`SamplingConfig`,
:data:`METHODS` / :func:`make_method` / :func:`build_training` (the method registry),
:func:`evaluate_images` / :class:`ImageTools` (image metrics), and the lab's :class:`WorldConfig` /
:func:`render_world`.
"""

from __future__ import annotations

from handsynth.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "load_hand_model": "handsynth.hand.model",
    "Renderer": "handsynth.render.renderer",
    "MAP_NAMES": "handsynth.render.maps",
    "render_dataset": "handsynth.render.dataset",
    "read_dataset": "handsynth.data.folder",
    "write_metadata": "handsynth.data.folder",
    "JobConfig": "handsynth.generate.job",
    "Dist": "handsynth.generate.job",
    "run_job": "handsynth.generate.job",
    "SamplingConfig": "handsynth.methods.interface",
    "METHODS": "handsynth.methods.registry",
    "make_method": "handsynth.methods.registry",
    "build_training": "handsynth.methods.registry",
    "ImageTools": "handsynth.eval.image_eval",
    "evaluate_images": "handsynth.eval.image_eval",
    "WorldConfig": "handsynth.world.scene",
    "render_world": "handsynth.world.dataset",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
