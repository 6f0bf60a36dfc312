"""Images in docs/ are drawn by the test suite: a test that draws one hands it to ``publish``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


def publish(image: Path, name: str) -> None:
    """Copy ``image`` to docs/images/``name`` when asked to (``scripts/docs images`` sets
    UPDATE_DOCS_IMAGES=1); otherwise the committed image stays as it is."""
    if os.environ.get("UPDATE_DOCS_IMAGES") == "1":
        shutil.copyfile(image, IMAGES / name)
