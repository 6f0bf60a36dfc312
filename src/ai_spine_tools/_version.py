"""The version of ai-spine-tools, in a module of its own so that any part can read it without
importing the package's public surface."""

__version__ = "0.1.0"
