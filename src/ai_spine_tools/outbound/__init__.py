"""Calls out of the process: the pooled HTTP client, the pool registry and the process pool."""
