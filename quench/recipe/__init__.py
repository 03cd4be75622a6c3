"""Recipe schema, loading (extends + overrides) and pre-flight checks."""

from quench.recipe.load import load_recipe
from quench.recipe.schema import Recipe

__all__ = ["Recipe", "load_recipe"]
