"""User-facing errors: each names the problem, and the CLI turns it into exit code 2."""


class QuenchError(Exception):
    """A problem with the user's input or environment that quench can explain in one message."""


class RecipeError(QuenchError):
    """A recipe that cannot be loaded or does not validate; names key, value and allowed."""


class StageError(QuenchError):
    """A stage failed for a reason it could name (bad checkpoint, empty data, ...)."""


class OfflineMiss(QuenchError):
    """A hub reference that cannot be looked up offline; `validate` warns, `run` fails."""


class UntrustedCode(QuenchError):
    """A model that ships its own code, and a recipe that does not allow it: `validate` warns,
    `run` refuses before any stage (transformers would refuse to load it mid-run)."""


class NotSetUp(QuenchError):
    """Something `quench setup` creates in the quench home (an engine environment, a bundled
    model) is not there; the message names the command that creates it."""


class EnvironmentMissing(NotSetUp):
    """An engine's environment is not set up: `validate` warns (the recipe may be meant for
    another host), `run` refuses before any stage."""


class UnknownName(QuenchError, KeyError):
    """A name no registry entry has (method, engine, stage, strategy, executor); the message
    names the kind, the name, a close match and the allowed names. A KeyError too, as the
    look-ups raised before."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
