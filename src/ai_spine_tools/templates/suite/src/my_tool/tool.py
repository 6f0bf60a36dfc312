"""My Tool: a suite of two tools served together, each under its name (``/words``, ``/slug``).

``ai-spine serve src/my_tool/tool.py`` serves every tool in ``tools``; add one by writing it here
(or in a module of its own, imported here) and listing it.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

from ai_spine_tools import create_tool, integer_field, string_field

_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


async def count_words(input: dict[str, Any]) -> dict[str, Any]:
    """Count the words of ``input["text"]`` and name the most frequent ones."""
    words = [word.lower() for word in _WORD.findall(input["text"])]
    top = Counter(words).most_common(input["top_n"])
    return {
        "word_count": len(words),
        "top_words": [{"word": word, "count": count} for word, count in top],
    }


async def make_slug(input: dict[str, Any]) -> dict[str, Any]:
    """Return a lowercase ASCII slug of ``input["text"]``."""
    ascii_text = unicodedata.normalize("NFKD", input["text"]).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[: input["max_length"]]
    return {"slug": slug.rstrip("-")}


words = create_tool(
    metadata={
        "name": "words",
        "version": "0.1.0",
        "description": "Word count and the most frequent words of a text",
        "capabilities": ["text.analyse"],
    },
    schema={
        "input": {
            "text": string_field(
                required=True,
                min_length=1,
                max_length=100_000,
                description="The text to count",
                example="One fish. Two fish. Red fish, blue fish.",
            ),
            "top_n": integer_field(min=1, max=50, default=3, description="How many words"),
        },
    },
    execute=count_words,
)

slug = create_tool(
    metadata={
        "name": "slug",
        "version": "0.1.0",
        "description": "A URL slug of a title",
        "capabilities": ["text.slug"],
    },
    schema={
        "input": {
            "text": string_field(
                required=True,
                min_length=1,
                max_length=1_000,
                description="The title",
                example="Héllo, Wörld! A title",
            ),
            "max_length": integer_field(min=1, max=200, default=80, description="Longest slug"),
        },
    },
    execute=make_slug,
)

tools = [words, slug]
