"""Methods as thin compositions of the shared parts in :mod:`handsynth.diffusion`."""
