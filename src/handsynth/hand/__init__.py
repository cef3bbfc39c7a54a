"""handsynth.hand"""
