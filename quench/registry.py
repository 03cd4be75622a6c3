"""A name -> class registry filled by a decorator, walking its package at first look-up."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from quench.errors import UnknownName
from quench.strict import shorten, suggest

T = TypeVar("T")


class Registry(Generic[T]):
    """Classes registered under their `name`; every module of `package` is imported on demand."""

    def __init__(self, kind: str, package: str) -> None:
        self.kind, self.package = kind, package
        self._classes: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: makes `cls` available under `cls.name`."""
        name = cls.name  # type: ignore[attr-defined]
        if name in self._classes:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._classes[name] = cls
        return cls

    @contextmanager
    def temporary(self, cls: type[T]) -> Iterator[type[T]]:
        """Registers `cls` for the `with` block only (tests, plug-in trials), then removes it;
        the package's own entries are loaded first, so a name clash is an error."""
        self._load()
        self.register(cls)
        try:
            yield cls
        finally:
            del self._classes[cls.name]  # type: ignore[attr-defined]

    def _load(self) -> None:
        if not self._loaded:
            package = importlib.import_module(self.package)
            for info in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{self.package}.{info.name}")
            self._loaded = True

    def get(self, name: str) -> type[T]:
        """The class registered as `name`; UnknownName (exit 2) naming the allowed ones."""
        self._load()
        cls = self._classes.get(name)
        if cls is None:
            raise UnknownName(self.unknown(name))
        return cls

    def unknown(self, name: str) -> str:
        """"unknown <kind> 'x'; did you mean `y`? allowed: a, b" (no guess when none is close)."""
        return suggest(name, self.names(), f"{self.kind} {shorten(name)}")

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._classes

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._load()
        return sorted(self._classes)
