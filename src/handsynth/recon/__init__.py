"""handsynth.recon"""
