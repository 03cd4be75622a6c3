"""A name -> class registry filled by a decorator, walking its package at first look-up."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Generic, TypeVar

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

    def _load(self) -> None:
        if not self._loaded:
            package = importlib.import_module(self.package)
            for info in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{self.package}.{info.name}")
            self._loaded = True

    def get(self, name: str) -> type[T] | None:
        self._load()
        return self._classes.get(name)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._classes)
