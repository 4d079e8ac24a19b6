"""Running jobs: one job's steps, training, dense checkpoints, the local and Ray executors, progress."""
