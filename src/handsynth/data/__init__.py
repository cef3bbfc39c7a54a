"""handsynth.data"""
