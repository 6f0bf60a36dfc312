"""Every kind of field, catastrophic patterns and secrets: the target of the hostile-input, regex
and fuzzing tests. It reports which fields it received, never their values."""

from __future__ import annotations

from typing import Any

from ai_spine_tools import (
    ToolContext,
    array_field,
    boolean_field,
    create_tool,
    date_field,
    datetime_field,
    email_field,
    enum_field,
    file_field,
    integer_field,
    json_field,
    number_field,
    object_field,
    secret_field,
    string_field,
    time_field,
    url_field,
    uuid_field,
)

# Patterns that backtracking engines take exponential time on, for inputs like "aaaa…!".
CATASTROPHIC = {
    "nested_plus": r"^(a+)+$",
    "nested_star": r"^(a*)*b$",
    "alternation": r"^(a|a)*$",
    "overlap": r"^(a|aa)+$",
    "words": r"^(\w+\s?)*$",
    "double": r"^(x+x+)+y$",
}


async def execute(input: dict[str, Any], config: dict[str, Any], context: ToolContext) -> Any:
    return {
        "received": sorted(key for key, value in input.items() if value is not None),
        "key_id": context.security.api_key_id,
        "has_token": config["token"] is not None,
    }


tool = create_tool(
    metadata={
        "name": "guarded-tool",
        "version": "3.0.0",
        "description": "Accepts every kind of field and reports what it got",
    },
    schema={
        "input": {
            "name": string_field(max_length=200, transform="trim"),
            "code": string_field(pattern=r"^[A-Z]{3}-\d{4}$"),
            **{key: string_field(max_length=100_000, pattern=p) for key, p in CATASTROPHIC.items()},
            "ratio": number_field(min=-1e6, max=1e6),
            "count": integer_field(min=0, max=1_000_000),
            "flag": boolean_field(default=False),
            "units": enum_field(["metric", "imperial"]),
            "tags": array_field(string_field(max_length=20), max_items=50, unique_items=True),
            "address": object_field(
                {"street": string_field(required=True, max_length=80), "zip": string_field()}
            ),
            "day": date_field(),
            "at": datetime_field(),
            "clock": time_field(),
            "email": email_field(),
            "site": url_field(),
            "id": uuid_field(),
            "upload": file_field(max_size=1024),
            "extra": json_field(),
            "password": secret_field(max_length=64),
        },
        "config": {"token": secret_field(min_length=8, max_length=64)},
    },
    execute=execute,
)
