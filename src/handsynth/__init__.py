"""handsynth: photo-realistic hand images with exact 3D labels.

Stages, in data-flow order: hand -> render -> text -> diffusion/methods -> data -> eval/recon.
"""

__version__ = "0.1.0"
