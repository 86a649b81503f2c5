"""Data files shipped with the router (package data, read with importlib.resources)."""
