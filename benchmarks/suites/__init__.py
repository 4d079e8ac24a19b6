"""The suite and its plan: the shipped suite files, their settings, --set overrides, phases, the dry run."""
