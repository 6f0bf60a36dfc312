"""My Tool: text statistics for a piece of text (words, sentences, frequent words, a slug)."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

from ai_spine_tools import (
    ToolContext,
    array_field,
    create_tool,
    enum_field,
    integer_field,
    string_field,
)

_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
_OPERATIONS = ["word_count", "char_count", "sentence_count", "top_words", "slug"]


def slugify(text: str) -> str:
    """Return a lowercase ASCII slug of ``text``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:80]


async def analyse(
    input: dict[str, Any], config: dict[str, Any], context: ToolContext
) -> dict[str, Any]:
    """Compute the requested statistics of ``input["text"]``."""
    text: str = input["text"]
    words = [word.lower() for word in _WORD.findall(text)]
    results: dict[str, Any] = {}
    for operation in input["operations"]:
        if operation == "word_count":
            results["word_count"] = len(words)
        elif operation == "char_count":
            results["char_count"] = len(text)
        elif operation == "sentence_count":
            results["sentence_count"] = len(_SENTENCE_END.findall(text)) or (1 if text else 0)
        elif operation == "top_words":
            results["top_words"] = [
                {"word": word, "count": count}
                for word, count in Counter(words).most_common(input["top_n"])
            ]
        elif operation == "slug":
            results["slug"] = slugify(text)
    return results


tool = create_tool(
    metadata={
        "name": "my-tool",
        "version": "0.1.0",
        "description": "Text statistics: word and sentence counts, frequent words and a slug",
        "capabilities": ["text.analyse"],
    },
    schema={
        "input": {
            "text": string_field(
                required=True,
                min_length=1,
                max_length=100_000,
                transform="trim",
                description="The text to analyse",
                example="The quick brown fox jumps over the lazy dog. The dog sleeps.",
            ),
            "operations": array_field(
                enum_field(_OPERATIONS),
                min_items=1,
                max_items=len(_OPERATIONS),
                unique_items=True,
                default=["word_count", "top_words"],
                description="Which statistics to compute",
            ),
            "top_n": integer_field(min=1, max=50, default=5, description="How many frequent words"),
        },
    },
    execute=analyse,
)
