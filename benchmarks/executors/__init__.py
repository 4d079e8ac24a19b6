"""Executors beyond one process: ``ray_executor`` (imported only when ``--executor ray`` is used)."""
