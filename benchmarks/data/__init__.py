"""Datasets: a registry of sources, device-resident loaders for small sets, streaming for large."""

from benchmarks.data.datasets import DataError, DatasetInfo, get_dataset, list_datasets, load_splits

__all__ = ["DataError", "DatasetInfo", "get_dataset", "list_datasets", "load_splits"]
