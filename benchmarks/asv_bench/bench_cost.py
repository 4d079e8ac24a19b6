"""The cost metrics of the metric table that asv tracks (lower is better), per method on a fixed model.

Structure only, no training. The tracked numbers are the metric table's ``asv`` cost metrics
(``benchmarks.store.metric_table``): adding one there adds its benchmark here.
"""

from benchmarks.asv_bench.common import COST_MODEL, INPUT, METHODS, add_metric_tracks
from benchmarks.store.metric_table import derive


class Cost:
    params = [list(METHODS)]
    param_names = ["method"]
    timeout = 600

    def setup_cache(self):
        from benchmarks.measure.cost import measure_cost
        from benchmarks.run.standalone import prepare_standalone

        out = {}
        for name, (method, kind, value, options) in METHODS.items():
            prepared = prepare_standalone(
                method, COST_MODEL, kind, value, options, in_channels=INPUT[0], input_size=INPUT[1]
            )
            cost = measure_cost(prepared.model, *INPUT)
            out[name] = cost | derive(cost)
        return out


add_metric_tracks(Cost, "cost")
