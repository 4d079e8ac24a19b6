"""MACs, parameters and density of each method on a fixed model (no training: structure only)."""

from benchmarks.asv_bench.common import COST_MODEL, INPUT, METHODS


class Cost:
    params = [list(METHODS)]
    param_names = ["method"]
    timeout = 600

    def setup_cache(self):
        from benchmarks.measure import measure_cost
        from benchmarks.standalone import prepare_standalone

        out = {}
        for name, (method, kind, value, options) in METHODS.items():
            prepared = prepare_standalone(
                method, COST_MODEL, kind, value, options, in_channels=INPUT[0], input_size=INPUT[1]
            )
            out[name] = measure_cost(prepared.model, *INPUT)
        return out

    def track_macs_effective(self, cache, method):
        return cache[method]["macs_effective"]

    track_macs_effective.unit = "MACs"

    def track_params_nonzero(self, cache, method):
        return cache[method]["params_nonzero"]

    track_params_nonzero.unit = "parameters"

    def track_density(self, cache, method):
        return cache[method]["params_nonzero"] / cache[method]["params"]

    track_density.unit = "nonzero / total"
