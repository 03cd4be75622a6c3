"""sweep.md: the sweep file's fields, strategies, executors and objective metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import anchor, bundled_block, code, md, module_doc, own_doc, page, table
from .fields import options_block, render_sections, sections_of

if TYPE_CHECKING:
    from quench.registry import Registry

SWEEP_INTRO = """\
A sweep file is one YAML mapping, validated like a recipe (unknown keys and lax types are
errors): a base recipe, the axes to vary, how trials are picked, what is cheapest and what
must pass. `quench sweep SWEEP.yaml` runs it; see [Sweeps](../how-to/sweeps.md). Before any
work the sweep file, every executor and strategy option and every trial recipe are validated."""


def registry_block(title: str, registry: Registry[Any], missing: list[str]) -> list[str]:
    """A `###` section for a registry (`strategy.kind`, `executor.kind`): a `####` per class
    with its module's docstring, its options model's own docstring (when it has fields) and
    its options table."""
    kind = registry.kind
    body = [f"### {title} {{#{anchor(title)}}}",
            f"`{kind}.kind` names one of these; `{kind}.options` holds its options."]
    for name in registry.names():
        cls = registry.get(name)
        body.append(f"#### {code(name)} {{#{kind}-{anchor(name)}}}")
        text = [md(module_doc(cls))]
        if own_doc(cls.options_model) and cls.options_model.model_fields:
            text.append(md(own_doc(cls.options_model)))
        body.append(" ".join(text))
        body.append(options_block(cls.options_model, missing, "No options."))
    return body


def metrics_block() -> list[str]:
    """What the objective may name, and which way is better."""
    from quench.sweep.spec import OBJECTIVE_METRICS

    return ["### Objective metrics {#objective-metrics}",
            "What `objective.minimize`, `objective.maximize` and the keys of "
            "`objective.weights` may name, and which way is better:",
            table(["metric", "better"], [[code(k), v] for k, v in OBJECTIVE_METRICS.items()])]


def sweep_page(missing: list[str]) -> str:
    from quench.sweep.executors import EXECUTORS
    from quench.sweep.spec import SweepSpec
    from quench.sweep.strategies import STRATEGIES

    after = {"strategy": lambda: registry_block("Strategies", STRATEGIES, missing),
             "executor": lambda: registry_block("Executors", EXECUTORS, missing),
             "objective": metrics_block}
    body = [SWEEP_INTRO]
    body += render_sections(sections_of(SweepSpec), missing, after, {},
                            {"name": "the file name"}, {}, "Top level")
    body += ["## Bundled sweeps {#bundled-sweeps}"]
    body += bundled_block(("sweeps",), "`quench sweep NAME` runs one; `quench recipes copy "
                          "NAME` writes a copy to edit.")
    return page("Sweep file fields", "`quench/sweep/spec.py`, `quench/sweep/strategies/` and "
                "`quench/sweep/executors/`", body)
