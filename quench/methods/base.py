"""The method interface: the `Method` base class, its options bases, its capabilities record
and the registry every method module registers with."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import Field

from quench.methods.quantizing import Calibration, Quantized
from quench.methods.shapes import storage_problems
from quench.methods.storage import Storage, WorkingSet
from quench.registry import Registry
from quench.strict import NoOptions, StrictModel


class MethodOptions(StrictModel):
    """The base of every method's options model: validated once, handed typed to the method."""


class ModuleOptions(MethodOptions):
    """Which modules a method quantizes; the base of most methods' options."""

    targets: list[str] = Field(default_factory=lambda: ["Linear"], description="Modules to "
                               "quantize (class names or `re:` patterns).")
    ignore: list[str] = Field(default_factory=lambda: ["lm_head"], description="Modules left "
                              "in full precision (names, class names or `re:` patterns).")


OptionsT = TypeVar("OptionsT", bound=StrictModel)  # the method's options model


@dataclass(frozen=True)
class MethodCapabilities:
    """What a method does beyond its hooks, as data the stages, `quench plan` and the
    pre-flight read (no hasattr, no method names); a method sets only what differs."""

    backend: str = "llmcompressor"
    """The library that quantizes, named in the quantize stage's report (ModelOpt's methods
    override the quantize, save and format_details hooks as well)."""
    loads_model: bool = True
    """False: the method quantizes the checkpoint's files without instantiating the model
    (model_free, gguf); the quantize stage calls quantize_files() instead of loading it."""
    checkpoint_kind: str = "compressed-tensors"
    """What quantize_files() leaves in the model folder for quench to evaluate: a
    compressed-tensors checkpoint (model_free), or a dense one (`hf`: gguf's dequantized GGUF)."""
    files_dense_copies: float = 0.0
    """Dense copies of the model quantize_files() holds at its peak, for sizing (0: one
    safetensors shard at a time, model_free)."""
    loads_on_device: bool = False
    """The whole model must be on the device: a method calibrating with plain forward passes
    (ModelOpt); llm-compressor onloads one layer at a time itself, so its model stays on the CPU."""
    fake_quantized: bool = False
    """The saved weights are dense and a quantizer state rounds them at load (ModelOpt's fake
    quantization): weight errors are read from the in-memory model, not the checkpoint."""
    replaces_weights: bool = False
    """The method assigns new weight tensors instead of writing into the loaded ones (AWQ's
    scale search): the quantize stage first moves the memory-mapped checkpoint into owned
    memory, or the replaced weights' mapped pages would stay resident beside their replacements."""


class Method(Generic[OptionsT]):
    """A quantization method: its schemes, its options model and the llmcompressor modifiers.

    Every hook receives the options as the validated instance of `options_model`.
    """

    name: ClassVar[str]
    schemes: ClassVar[tuple[str, ...]]
    default_scheme: ClassVar[str]
    options_model: ClassVar[type[StrictModel]] = NoOptions
    capabilities: ClassVar[MethodCapabilities] = MethodCapabilities()

    def parse_options(self, options: dict[str, Any] | StrictModel | None = None) -> OptionsT:
        """The options as this method's typed model (a dict is validated, defaults filled)."""
        if isinstance(options, self.options_model):
            return options  # type: ignore[return-value]
        raw = options.model_dump() if isinstance(options, StrictModel) else options or {}
        return self.options_model.model_validate(raw)  # type: ignore[return-value]

    def needs_calibration(self, scheme: str, options: OptionsT) -> bool:
        """Whether this scheme/options combination needs calibration data."""
        return False

    def storage(self, scheme: str, options: OptionsT) -> Storage | None:
        """What the checkpoint stores per weight, activation and KV entry: the one source of
        sizes (the group size too), for sizing and the pre-flight's shape rules.

        None: the method cannot know before it runs (a raw llmcompressor recipe).
        """
        return None

    def modifiers(self, scheme: str, options: OptionsT) -> list[Any] | str:
        """The llmcompressor recipe for `oneshot` (modifiers or YAML); empty: no quantization."""
        raise NotImplementedError

    def context(self, options: OptionsT) -> AbstractContextManager[Any]:
        """Entered around `oneshot`; a method's workaround for a library limitation goes here."""
        return nullcontext()

    def logs_each_module(self, scheme: str, options: OptionsT) -> bool:
        """Whether llm-compressor logs one METRIC `error` line per module it compresses
        (GPTQModifier does): the quantize stage's progress is then a bar, else a spinner."""
        return False

    def input_file(self, options: OptionsT) -> Path | None:
        """A file the options name whose content shapes the checkpoint (a raw recipe)."""
        return None

    def targets(self, options: OptionsT) -> tuple[list[str], list[str]] | None:
        """The module targets and ignore patterns (compressed-tensors); None: not by module."""
        if isinstance(options, ModuleOptions):
            return options.targets, options.ignore
        return None

    def transform(self, options: OptionsT) -> str:
        """What the checkpoint asks of the engine beyond its scheme: none, fused rotations, or
        online ones (matrix.yaml `transform:` rules; methods with a `rotation` option)."""
        return "none"

    def quantize_files(self, source: Path, out: Path, scheme: str, options: OptionsT,
                       device: str, calibration: Path | None = None,
                       metadata: dict[str, str | int] | None = None) -> dict[str, Any]:
        """Writes the quantized checkpoint into `out` from the files in `source` (only with
        capabilities.loads_model False); calibration: the calibrate stage's dataset folder
        (None: skipped); metadata: the license stage's keys for formats that carry them (GGUF).
        Returns what the stage reports beside its own outputs."""
        raise NotImplementedError

    def check_model(self, scheme: str, options: OptionsT, config: dict[str, Any]) -> list[str]:
        """Why this scheme cannot (or would silently not) quantize the model of `config` (its
        config.json), for `quench validate`; empty when it can. The default applies the
        shape rules of what storage() says (groups and blocks must divide the layer widths)."""
        return storage_problems(scheme, self.storage(scheme, options), config)

    def unavailable_reason(self) -> str | None:
        """Why the method's tools cannot run on this machine ("run `quench setup ...`")."""
        return None

    def tool_versions(self) -> dict[str, str]:
        """Versions of the non-Python tools it runs (they enter the quantize stage's key)."""
        return {}

    def working_set(self, scheme: str, options: OptionsT) -> WorkingSet:
        """What it holds beside the model while quantizing a layer (for `quench plan`)."""
        return WorkingSet()

    def quantize(self, model: Any, scheme: str, options: OptionsT,
                 calibration: Calibration) -> Quantized:
        """Quantizes `model` in place; by default with llm-compressor's `oneshot` and
        modifiers() (quench/methods/llmcompressor_backend.py), the one place it runs."""
        from quench.methods import llmcompressor_backend

        counted = self.targets(options) if self.logs_each_module(scheme, options) else None
        return llmcompressor_backend.quantize(model, self.modifiers(scheme, options),
                                              calibration, self.context(options), counted)

    def save(self, model: Any, out: Path, quantized: bool, max_shard_size: str) -> None:
        """Writes the model where the stage reloads it from; default: compressed-tensors."""
        model.save_pretrained(out, save_compressed=quantized, max_shard_size=max_shard_size)

    def format_details(self, model: Any) -> dict[str, Any] | None:
        """Format facts of the reloaded checkpoint; None: read its compressed-tensors config."""
        return None

    def release(self) -> None:
        """After the save: drops the library's references to the model (llm-compressor's
        session), so that no dense copy outlives the stage into the reload."""
        from quench.methods import llmcompressor_backend

        llmcompressor_backend.release_session()


METHODS: Registry[Method[Any]] = Registry("method", "quench.methods")
register_method = METHODS.register


def get_method(name: str) -> Method[Any]:
    """A new instance of the registered method `name`; UnknownName naming the allowed ones."""
    return METHODS.get(name)()


def method_names() -> list[str]:
    """Every registered method name, sorted."""
    return METHODS.names()
