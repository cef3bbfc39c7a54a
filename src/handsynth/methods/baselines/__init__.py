"""The paper's baselines under ``handsynth generate``: ``sd``, ``controlnet`` and ``t2i-adapter``
(``generators``), registered in ``handsynth.methods.registry``. Nothing here trains."""
