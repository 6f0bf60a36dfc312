"""The tool for other systems: JSON Schema, OpenAI/Anthropic tools, OpenAPI, registration."""
