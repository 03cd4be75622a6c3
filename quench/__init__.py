"""quench: one declarative recipe from a base LLM to a quantized, evaluated, tracked artifact."""

__version__ = "0.1.0"
