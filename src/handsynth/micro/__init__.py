"""The micro world's trained pieces: micro SD base, evaluation tools, prompts and the default model.

Everything here is trained on this project's own procedural world (``handsynth world``) because no
pretrained weights or real datasets reach it; ``benchmarks/micro/run.py`` uses these pieces to test
AttentionHand's claims, and ``handsynth demo`` runs the default model they produce.
"""

from handsynth.micro.assets import DefaultModel, default_model

__all__ = ["DefaultModel", "default_model"]
