"""AttentionHand (Park et al., ECCV 2024), training and generation side by side.

- ``training``: the config (``AttentionHandConfig``), the dataset of global + local pairs, and the training
  task ``handsynth train --method attentionhand`` runs in the shared loop (``handsynth.diffusion.training``);
- ``generator``: the trained guidance module φ_g on the frozen base in the shared ControlNet loop
  (``handsynth.methods.sampler``), for ``handsynth generate --method attentionhand``;
- ``options``: its own ``handsynth generate`` flags.

TAS itself (``handsynth.diffusion.tas``) is shared by training and inference. The method is registered
in ``handsynth.methods.registry``.
"""
