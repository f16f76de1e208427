"""Build of the codec's optional compiled accelerator, ``backup_core.codec._speedups``.

Everything else about the project is in pyproject.toml. The extension is
``optional=True``: without a C compiler or the Python headers, ``pip install
-e .`` (``make setup``) still succeeds and the codec runs its pure-Python
exact walker (``backup_core.codec.accelerator()`` says which path is active and why).
An editable install builds it in place, next to its source.

The build records its outcome in ``backup_core/codec/_speedups.build.json``
(``{"built": true, "sha256": ...}`` or ``{"built": false, "error": ...}``), so
a test can fail when an extension that was built stops being used, and bakes
the SHA-256 of ``_speedups.c`` into the module, so a stale build (the source
changed since) is not used.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
SOURCE = Path("backup_core") / "codec" / "_speedups.c"
MARKER = HERE / "backup_core" / "codec" / "_speedups.build.json"
SOURCE_SHA256 = hashlib.sha256((HERE / SOURCE).read_bytes()).hexdigest()


def _write_marker(data: dict) -> None:
    try:
        MARKER.write_text(json.dumps(data, sort_keys=True) + "\n")
    except OSError:  # a read-only source tree (building from an sdist elsewhere): the marker is informational
        pass


class BuildExt(build_ext):
    """Records whether the optional extension was built (and why not)."""

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # setuptools turns this into a warning for optional extensions
            _write_marker({"built": False, "error": f"{type(exc).__name__}: {exc}"[:500], "sha256": SOURCE_SHA256})
            raise
        _write_marker({"built": True, "sha256": SOURCE_SHA256, "path": os.path.basename(self.get_ext_fullpath(ext.name))})


setup(
    ext_modules=[
        Extension(
            "backup_core.codec._speedups",
            [str(SOURCE)],
            define_macros=[("SPEEDUPS_SOURCE_SHA256", f'"{SOURCE_SHA256}"')],
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
