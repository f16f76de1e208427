"""MongoDB backup & restore: lossless CSV snapshots, compare, restore, scheduling.

The package holds all product logic; the Streamlit pages and the CLI are thin
front-ends over it. Nothing in here imports Streamlit.
"""

__version__ = "1.0.0"
