"""handsynth.eval"""
