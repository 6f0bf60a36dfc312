"""Calling what may fail: circuit breakers, retries and bounded concurrency."""
