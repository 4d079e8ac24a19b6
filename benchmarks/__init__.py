"""tissuebench's harness: datasets, training, measurement, result store, suites, runner, CLI."""
