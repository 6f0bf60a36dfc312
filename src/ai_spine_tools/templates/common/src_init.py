"""My Tool: an AI Spine tool."""
