"""The DNS codec (scanner.resolve: message, dnsname, wire, answer) as one
namespace, so that tests and harnesses can run the build that ships and the
source build (``native.source_module``) side by side."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType, SimpleNamespace

from scanner import native

CODEC_MODULES = (
    "scanner.resolve.message",
    "scanner.resolve.dnsname",
    "scanner.resolve.wire",
    "scanner.resolve.answer",
)


def shipped() -> SimpleNamespace:
    """The codec as imports load it (compiled, where built)."""
    return _joined(importlib.import_module(name) for name in CODEC_MODULES)


def from_source() -> SimpleNamespace:
    """The codec executed from its source, even where compiled."""
    return _joined(native.source_module(name) for name in CODEC_MODULES)


def compiled() -> bool:
    return native.compiled("scanner.resolve.wire")


def builds() -> tuple[SimpleNamespace, ...]:
    """The codec as it ships, and from source too when that is another build."""
    return (shipped(), from_source()) if compiled() else (shipped(),)


def _joined(modules: Iterable[ModuleType]) -> SimpleNamespace:
    joined: dict[str, object] = {}
    for module in modules:
        joined.update((k, v) for k, v in vars(module).items() if not k.startswith("__"))
    return SimpleNamespace(**joined)
