"""handsynth.poses"""
