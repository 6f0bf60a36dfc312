"""Calls out of the process: the pooled HTTP client behind ``context.http``, the pool registry."""
