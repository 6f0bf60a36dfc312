"""Benchmarks of ai-spine-tools, run side by side with their baselines."""
