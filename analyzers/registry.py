"""The one place analyzers are found: every Analyzer subclass with a `name` in a module of this package.

Adding an analyzer means adding its module (and its test); nothing else is edited: its options become a
settings section through `options_model` (infra/core/settings.py assembles them from here). Modules that
define no analyzer and subpackages (analyzers/common/) are skipped.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from functools import lru_cache
from typing import Any

from reelscope.analyzers.base import Analyzer, AnalyzerConfig

from reelscope import analyzers

_INFRASTRUCTURE_MODULES = {"base", "registry"}


class UnknownAnalyzer(ValueError):
    """A name in settings that no analyzer is registered under (a typo, most often: the message says which
    registered name is closest)."""


@lru_cache(maxsize=1)
def all_analyzers() -> dict[str, type[Analyzer[Any]]]:
    """Every registered analyzer class by name (imports are cheap: models load in `load()`)."""
    found: dict[str, type[Analyzer[Any]]] = {}
    for info in pkgutil.iter_modules(analyzers.__path__):
        if info.ispkg or info.name in _INFRASTRUCTURE_MODULES or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"reelscope.analyzers.{info.name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, Analyzer)
                and obj.__module__ == module.__name__
                and getattr(obj, "name", None)
            ):
                if obj.name in found:
                    raise RuntimeError(f"two analyzers are named {obj.name!r}")
                found[obj.name] = obj
    return found


def create(cls: type[Analyzer[Any]], config: AnalyzerConfig | None = None) -> Analyzer[Any]:
    """An instance of the analyzer with its options and runtime from `config` (defaults without one)."""
    if config is None:
        return cls()
    return cls(config.options_for(cls), config.analyzer_runtime())


def is_configured(cls: type[Analyzer[Any]], config: AnalyzerConfig | None = None) -> bool:
    """The analyzer's `configured` over its options from `config` (its defaults without one)."""
    if config is None:
        return cls.configured(cls.checked_options(None))
    return cls.configured(config.options_for(cls), config.analyzer_runtime())


def enabled_analyzers(
    names: list[str], config: AnalyzerConfig | None = None
) -> dict[str, type[Analyzer[Any]]]:
    """The analyzers named in settings, failing loudly on a name nobody registered.

    `auto` stands for every registered analyzer whose optional dependencies are installed and whose weights
    are configured here; `-name` removes one (e.g. `auto,-faces`).
    """
    registry = all_analyzers()
    if "auto" in names:
        removed = {n[1:] for n in names if n.startswith("-")}
        extra = [n for n in names if n != "auto" and not n.startswith("-")]
        names = [
            n for n, c in registry.items() if n not in removed and c.available() and is_configured(c, config)
        ]
        names += [n for n in extra if n not in names]
    unknown = [n for n in names if n not in registry]
    if unknown:
        close = {n: difflib.get_close_matches(n, list(registry), n=1) for n in unknown}
        hints = "".join(f"; {n!r}: did you mean {c[0]!r}?" for n, c in close.items() if c)
        raise UnknownAnalyzer(
            f"unknown analyzers {unknown}{hints} (registered: {', '.join(sorted(registry))})"
        )
    return {n: registry[n] for n in names}


def groups(names: list[str], config: AnalyzerConfig | None = None) -> dict[str, list[type[Analyzer[Any]]]]:
    """Enabled analyzers by processor group."""
    out: dict[str, list[type[Analyzer[Any]]]] = {}
    for cls in enabled_analyzers(names, config).values():
        out.setdefault(cls.group, []).append(cls)
    return out
