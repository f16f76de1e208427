"""Streamlit helpers shared by the dashboard pages (``app.py`` and ``pages/``).

Nothing in ``backup_core`` imports this package; it is the thin layer between
Streamlit widgets and the core. It needs Streamlit, which the core does not:
installed as a dependency of another project, it comes with the ``ui`` extra.
"""

import importlib.util

if importlib.util.find_spec("streamlit") is None:  # (find_spec: no import, so first_start stays fast)
    raise ModuleNotFoundError("the dashboard and the embeddable backup tab (package webui) need Streamlit: "
                              "pip install 'mongo-backup-dashboard[ui]'", name="streamlit")
