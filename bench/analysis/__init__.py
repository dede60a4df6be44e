"""The parent side only: results as stored (store), and everything read from them (stats, compare,
baseline, export, report with its templates, views). It never runs or re-runs anything, and it
names no runner: the worker never imports it (pandas, matplotlib and rich live here)."""
