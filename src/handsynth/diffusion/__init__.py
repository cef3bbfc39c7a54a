"""handsynth.diffusion"""
