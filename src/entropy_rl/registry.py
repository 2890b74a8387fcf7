"""The one registry pattern: loss modes, advantage estimators, controller knobs, tasks and
rollout engines are each a `Registry` of named entries.

An entry is registered where it is defined (a decorator, or a call next to it), from the
package or from any module of the user's: the registry is open. Reading it is read-only
(a `Mapping`); a name registered twice is refused; an unknown name is refused in one line
that lists the registered ones. Standard library only, so that every layer can hold one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from entropy_rl.errors import ConfigError

T = TypeVar("T")
F = TypeVar("F")


class UnknownName(ConfigError, KeyError):
    """A name no entry of a registry has. A `ConfigError` (the command line reports it in one
    line) and a `KeyError` (what a `Mapping` raises)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Mapping[str, T], Generic[T]):
    """Named entries of one kind, in registration order. `kind` names them in messages."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register `entry` under `name`; ValueError if the name is taken. Returns `entry`."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def register(self, name: str, make: Callable[[F], T] | None = None) -> Callable[[F], F]:
        """A decorator registering what it decorates under `name`, as `make(it)` when given
        (e.g. a function wrapped in its entry's dataclass); it returns the decorated object."""

        def decorate(obj: F) -> F:
            self.add(name, make(obj) if make is not None else obj)  # type: ignore[arg-type]
            return obj

        return decorate

    def remove(self, name: str) -> None:
        """Unregister `name` (tests, or a user replacing an entry); nothing if absent."""
        self._entries.pop(name, None)

    def check(self, name: str, field: str) -> T:
        """The entry `name`, read from the config field `field`; `UnknownName` saying
        "<field> must be one of a, b; got 'x'" otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownName(
                f"{field} must be one of {', '.join(self._entries)}; got {name!r}"
            ) from None

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownName(
                f"unknown {self.kind} {name!r}; registered: {', '.join(self._entries)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
