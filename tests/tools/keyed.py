"""Needs a per-request API key in its config; echoes which fields it received."""

from __future__ import annotations

from typing import Any

from ai_spine_tools import api_key_field, create_tool, string_field, url_field


async def execute(input: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    return {"endpoint": config["endpoint"], "key_length": len(config["api_key"]), "q": input["q"]}


tool = create_tool(
    metadata={"name": "secret-tool", "version": "1.0.0", "description": "Uses a caller's key"},
    schema={
        "input": {"q": string_field(required=True, max_length=20)},
        "config": {
            "api_key": api_key_field(required=True, min_length=8),
            "endpoint": url_field(default="https://api.example.com/"),
        },
    },
    execute=execute,
)
