"""The escape hatch: a raw llmcompressor recipe YAML, read with a safe loader, run as is."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, field_validator

from quench.methods import Method, MethodOptions, register_method


class RawRecipeOptions(MethodOptions):
    recipe: str = Field(description="Path to an llm-compressor recipe YAML file, read with a "
                        "safe loader and run as is.")
    calibrate: bool = Field(True, description="Whether the recipe needs calibration data.")

    @field_validator("recipe")
    @classmethod
    def _safe_yaml(cls, value: str) -> str:
        path = Path(value).expanduser()
        if not path.is_file():
            raise ValueError(f"{value} is not a file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"{value} is not safe YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{value} must hold a mapping (an llmcompressor recipe)")
        return str(path.resolve())


@register_method
class RawLLMCompressorRecipe(Method[RawRecipeOptions]):
    name = "llmcompressor"
    schemes = ("custom",)
    default_scheme = "custom"
    options_model = RawRecipeOptions

    def needs_calibration(self, scheme: str, options: RawRecipeOptions) -> bool:
        return options.calibrate

    def modifiers(self, scheme: str, options: RawRecipeOptions) -> str:
        return Path(options.recipe).read_text()

    def input_file(self, options: RawRecipeOptions) -> Path | None:
        return Path(options.recipe)
