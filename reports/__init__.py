"""Reports: the paper's tables and figures regenerated from measured runs (and a static index)."""
