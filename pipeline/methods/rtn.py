"""Round-to-nearest weight-only quantization with llmcompressor's QuantizationModifier."""

from typing import Any

from pydantic import Field

from pipeline.methods import Method, register_method
from pipeline.strict import StrictModel


class RTNOptions(StrictModel):
    targets: list[str] = Field(
        default_factory=lambda: ["Linear"], description="Modules to quantize."
    )
    ignore: list[str] = Field(
        default_factory=lambda: ["lm_head"], description="Modules left in full precision."
    )


@register_method
class RoundToNearest(Method):
    name = "rtn"
    schemes = ("W4A16", "W8A16")
    default_scheme = "W4A16"
    options_model = RTNOptions

    def modifiers(self, scheme: str, options: dict[str, Any]) -> list[Any]:
        from llmcompressor.modifiers.quantization import QuantizationModifier

        targets, ignore = options["targets"], options["ignore"]
        return [QuantizationModifier(targets=targets, scheme=scheme, ignore=ignore)]
