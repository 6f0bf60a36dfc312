"""Who may call and how much: API keys, signed requests, rate limits, body bounds, headers."""
