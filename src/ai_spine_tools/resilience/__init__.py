"""Calling what may fail: deadlines, circuit breakers, retries and bounded concurrency."""
