"""Not a tool file: skipped by a folder target (its name starts with an underscore)."""

RAISE = 1 / 0
