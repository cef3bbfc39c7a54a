"""Methods as thin compositions of the shared parts in :mod:`handsynth.diffusion`, one folder each.

- ``attentionhand/``, ``baselines/`` (and the methods to come): each method's config, data, training
  task and generator side by side;
- ``registry``: the one registry (name -> training config and task, generator, own flags) that
  ``handsynth train`` and ``handsynth generate`` look methods up in;
- ``interface``: what the generation job needs from a method; ``sampler``: the shared ControlNet loop;
- ``cli``: ``handsynth train``; ``synthetic``: a tiny record dataset for tests and demos.

How to add one: docs/contributing.md.
"""
