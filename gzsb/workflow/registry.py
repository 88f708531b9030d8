"""Name → implementation registries. The YAML names things; code looks them up here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from gzsb.errors import ConfigurationError
from gzsb.workflow.needs import NEEDS, Needs

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries and self._entries[name] != entry:
            raise ConfigurationError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigurationError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        return f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or '(none)'}"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


@dataclass(frozen=True)
class GuardEntry:
    """A pure predicate. ``check(ctx, args)`` returns None when it passes, else a reason
    a student can read. ``args`` is a marshmallow field validating the YAML arguments
    (None: the guard takes none); ``refers_to`` names a flow section its argument must
    be a key of (e.g. ``windows``)."""

    name: str
    check: Callable[..., str | None]
    args: Any = None
    refers_to: str | None = None
    describe: str = ""


@dataclass(frozen=True)
class StepEntry:
    """A step handler: ``run(ctx, payload)`` changes the application; ``schema`` validates
    the payload first. ``example`` is a payload the demo seeder and API docs can use."""

    name: str
    run: Callable[..., None]
    schema: Any = None
    example: Callable[..., dict[str, Any]] | None = None


class GuardRegistry(Registry[GuardEntry]):
    def register(
        self, name: str, *, args: Any = None, refers_to: str | None = None
    ) -> Callable[[Callable[..., str | None]], Callable[..., str | None]]:
        def decorate(fn: Callable[..., str | None]) -> Callable[..., str | None]:
            self.add(
                name,
                GuardEntry(name, fn, args, refers_to, (fn.__doc__ or "").strip().split("\n")[0]),
            )
            return fn

        return decorate


class StepRegistry(Registry[StepEntry]):
    def register(
        self,
        name: str,
        *,
        schema: Any = None,
        example: Callable[..., dict[str, Any]] | None = None,
    ) -> Callable[[Callable[..., None]], Callable[..., None]]:
        def decorate(fn: Callable[..., None]) -> Callable[..., None]:
            self.add(name, StepEntry(name, fn, schema, example))
            return fn

        return decorate


GUARDS = GuardRegistry("guard")
STEPS = StepRegistry("step")
# Page templates and SMS templates are registries of names too, filled by the web layer
# and by config, so the validator can reject a flow that names one that does not exist.
PAGES: Registry[str] = Registry("page")
SMS_TEMPLATES: Registry[str] = Registry("SMS template")


@dataclass(frozen=True)
class FlowRegistries:
    """Everything a flow's names are checked against, handed to the validator by its caller
    (the engine does not know how areas, pages or SMS templates are found)."""

    guards: GuardRegistry
    steps: StepRegistry
    pages: Registry[str]
    sms: Registry[str]
    needs: Needs

    def without_needs(self) -> FlowRegistries:
        """For flows that are not the product's (test fixtures, what-if sketches)."""
        return FlowRegistries(self.guards, self.steps, self.pages, self.sms, Needs())


def global_registries() -> FlowRegistries:
    """The process-wide registries, as far as they have been filled (see gzsb.bootstrap)."""
    return FlowRegistries(GUARDS, STEPS, PAGES, SMS_TEMPLATES, NEEDS)
