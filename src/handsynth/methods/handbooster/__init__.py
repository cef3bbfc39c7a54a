"""HandBooster (Xu et al., CVPR 2024): a pixel-space diffusion model of hand(-object) crops conditioned on
rendered maps (normal + texture by default) and the hand's global orientation.

- ``config.py``: the run's settings (``handsynth train --method handbooster``; configs/handbooster_*.yaml)
- ``model.py``: the UNet (diffusers ``UNet2DModel``) + the orientation encoder, save/load of a run folder
- ``data.py``: one training item per hand: the square crop, its condition channels, mirroring, weights
- ``task.py``: the training task on the shared loop (x0 loss, Eq. 2)
- ``generator.py``: ``handsynth generate --method handbooster`` (DDIM 250, eta 1, CFG on the orientation)
"""
