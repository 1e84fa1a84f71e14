"""Built-in metrics; each module registers under the ``vlmhb.metrics`` entry points."""
