"""asv benchmarks of tissuebench. Every tracked number is lower-is-better (asv flags any increase):
top-1 error, MACs, parameters, density, time, peak memory.

``TISSUEBENCH_ASV_PROFILE=fast`` (default; CI smoke) or ``nightly`` (bigger models and data).
Nothing here touches CUDA at import time.
"""
