"""The paper's published numbers and the search for the presets that reproduce its rows."""
