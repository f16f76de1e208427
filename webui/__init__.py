"""Streamlit helpers shared by the dashboard pages (``app.py`` and ``pages/``).

Nothing in ``backup_core`` imports this package; it is the thin layer between
Streamlit widgets and the core.
"""
