"""Built-in metrics, one module each.

Nothing is imported here: the metrics are found through the ``vlmhb.metrics``
entry point group (see ``ENTRY_POINTS.txt`` next to this file), so importing
this package stays cheap and third-party metrics register the same way.
"""
