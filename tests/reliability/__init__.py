"""Reliability suite: bounded input, strict types, clear exit-2 errors (issue 13)."""
