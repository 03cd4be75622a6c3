"""Recipe schema, loading (extends + overrides) and pre-flight checks."""

from pipeline.recipe.load import load_recipe
from pipeline.recipe.schema import Recipe

__all__ = ["Recipe", "load_recipe"]
