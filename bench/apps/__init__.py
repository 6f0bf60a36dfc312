"""The applications the server benchmark runs side by side with ours."""
