"""Measuring a model: cost under the counting convention, latency on every runtime, training throughput."""
