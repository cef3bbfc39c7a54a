"""handsynth.render"""
