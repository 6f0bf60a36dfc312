"""Images in docs/ are drawn by the test suite: a test that draws one hands it to ``publish``.

``docs_text()`` is everything the documentation says: the README, every page of docs/ and the
settings table written from the code when the site is built."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"


def docs_text() -> str:
    """The README, every page of docs/, and the settings table the site's build writes."""
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    assert spec is not None
    assert spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return "\n".join([*(page.read_text() for page in pages), hooks.settings_table()])


def publish(image: Path, name: str) -> None:
    """Copy ``image`` to docs/images/``name`` when asked to (``scripts/docs images`` sets
    UPDATE_DOCS_IMAGES=1); otherwise the committed image stays as it is."""
    if os.environ.get("UPDATE_DOCS_IMAGES") == "1":
        shutil.copyfile(image, IMAGES / name)
