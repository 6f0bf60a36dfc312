"""MkDocs hooks: the settings page's table is written from the code at build time, so it cannot
drift from what the server reads, and the benchmark's chart is taken from where the benchmark
writes it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # MkDocs is needed to build the site, not to read its settings table
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files

ROOT = Path(__file__).resolve().parent.parent
GENERATED_IMAGES = {"images/benchmark.png": ROOT / "bench" / "results" / "server.png"}

MARKER = "<!-- settings-table -->"


def settings_table() -> str:
    """Every environment variable the server reads, as a Markdown table: name, default, meaning."""
    from ai_spine_tools._variables import DEPRECATED_SETTINGS, DOCUMENTED_SETTINGS

    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, default, meaning in DOCUMENTED_SETTINGS:
        shown = f"`{default}`" if default else "—"
        rows.append(f"| `{name}` | {shown} | {meaning.replace('|', chr(92) + '|')} |")
    for name, advice in sorted(DEPRECATED_SETTINGS.items()):
        rows.append(f"| `{name}` | — | deprecated: {advice.split(': ', 1)[-1]} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace the settings marker with the table."""
    if MARKER in markdown:
        return markdown.replace(MARKER, settings_table())
    return markdown


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the benchmark's own chart (``python -m bench.server`` writes it) to the site."""
    from mkdocs.structure.files import File

    for uri, source in GENERATED_IMAGES.items():
        files.append(File.generated(config, uri, abs_src_path=str(source)))
    return files
