"""A worked tissuebench plugin (docs/plugins.md): see ``plugin.py``."""
