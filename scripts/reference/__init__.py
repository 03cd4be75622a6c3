"""The generator of docs/reference/, one module per page (scripts/gen_reference.py runs it)."""
