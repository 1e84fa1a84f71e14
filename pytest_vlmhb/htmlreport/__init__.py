"""report.html: one self-contained page (leaderboard, sample browser, side-by-side
view, report.md's tables and plots) and the pytest-html extras of sample items.

The package itself imports nothing: :mod:`.write` (which imports pandas and
matplotlib's users) is imported only when the outputs are written, and
:mod:`.extras` only under pytest-html's ``--html``.
"""
