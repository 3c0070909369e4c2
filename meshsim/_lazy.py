"""Lazy exports for packages whose names pull in heavy imports (matplotlib, ipywidgets) only when used.

>>> getattr_, dir_ = lazy_exports("meshsim.viz", {"over_time": "overtime"})
>>> getattr_("over_time").__module__
'meshsim.viz.overtime'
>>> "over_time" in dir_()
True
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, where: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each name of ``where`` loads ``package.<module>`` on first use."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
