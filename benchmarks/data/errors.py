"""The one error of the data layer: every module that finds, reads or decodes a dataset raises it."""


class DataError(RuntimeError):
    """A dataset is missing or corrupt; the message says where we looked and how to get it."""
