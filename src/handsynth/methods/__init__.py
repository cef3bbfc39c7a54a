"""handsynth.methods"""
