"""Ray, once per process: connect to a cluster, or start a local instance on this machine."""

from __future__ import annotations

import os


def init_ray(address: str | None, log):
    """Connect to ``address`` (auto, HOST:PORT) or, when None, start a local instance; already connected: as is."""
    import ray

    if ray.is_initialized():
        return ray
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local instance: no token to distribute
        ray.init(include_dashboard=False, log_to_driver=True, configure_logging=False)
    else:
        ray.init(address=address, log_to_driver=True, configure_logging=False)
    log(f"ray: {ray.cluster_resources().get('CPU', 0):g} CPUs, {ray.cluster_resources().get('GPU', 0):g} GPUs")
    return ray
