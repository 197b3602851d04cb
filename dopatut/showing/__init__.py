"""Showing: plots, pictures and widgets. Nothing here trains."""
