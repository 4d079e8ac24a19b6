"""The results folder: one typed record per job, the metric table, atomic files, provenance, history."""
