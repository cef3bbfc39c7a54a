"""SesaHand (Rao et al. 2026): hierarchical structural fusion + hand structure attention on a ControlNet.

- ``fusion``: :class:`StructuralFusion`, the trainable guidance module (trunk, per-granularity encoders,
  per-level fusion blocks);
- ``config``: :class:`SesaHandConfig` (``handsynth train --method sesahand``);
- ``data``: records -> images, stacked structure maps, prompts, hand masks and hand tokens;
- ``task``: :class:`SesaHandTask` on the shared training loop;
- ``generator``: ``handsynth generate --method sesahand`` (DDIM 20, CFG 9, HSA on by default);
- ``options``: its own ``handsynth generate`` flags.

HSA itself is the shared diffusion part :mod:`handsynth.diffusion.hand_bias`; the CoT prompts come from
``handsynth caption --cot``. Every reading of the paper is listed in docs/sesahand.md.
"""
