"""The book's helpers: exercises and their checks, notebook glue, the figure check."""
