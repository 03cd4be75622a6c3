"""hf: transformers in the main environment, the reference every served engine is compared to."""

from __future__ import annotations

from typing import Any

from pipeline.engines import Engine, register_engine
from pipeline.engines.options import NoOptions, parse_options


@register_engine
class HfEngine(Engine):
    name = "hf"
    served = False

    def option_errors(self, options: dict[str, Any]) -> list[str]:
        """hf takes no target.options: any key is a mistake (meant for another engine?)."""
        try:
            parse_options(NoOptions, options, self.name)
        except ValueError as exc:
            return [str(exc)]
        return []
