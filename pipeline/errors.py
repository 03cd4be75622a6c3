"""User-facing errors: each names the problem, and the CLI turns it into exit code 2."""


class QuenchError(Exception):
    """A problem with the user's input or environment that quench can explain in one message."""


class RecipeError(QuenchError):
    """A recipe that cannot be loaded or does not validate; names key, value and allowed."""


class StageError(QuenchError):
    """A stage failed for a reason it could name (bad checkpoint, empty data, ...)."""


class OfflineMiss(QuenchError):
    """A hub reference that cannot be looked up offline; `validate` warns, `run` fails."""
