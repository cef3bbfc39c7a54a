"""handsynth.text"""
