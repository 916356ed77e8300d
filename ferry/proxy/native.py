"""Loading the mypyc-compiled hot path (``make native``), only while it matches the sources.

``scripts/build_native.py`` compiles the modules in ``COMPILED`` into
``build/native/ferry/proxy`` and writes the sources' digest to ``STAMP``
there. ``prefer_native`` puts that directory first on the package's
``__path__`` when the stamp matches, so ``import ferry.proxy.exchange``
finds the extension; otherwise — no build, an edited source, another Python,
or ``FERRY_PURE_PYTHON=1`` — the pure-Python modules load. Both behave alike
(the same sources; the test suite runs on whichever is loaded).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

__all__ = [
    "COMPILED",
    "NATIVE_DIR",
    "build_is_current",
    "native_loaded",
    "prefer_native",
    "sources_digest",
]

#: The per-request modules, compiled together (calls between them become C calls).
COMPILED = (
    "connection",
    "detours",
    "exchange",
    "headers",
    "http",
    "limits",
    "metrics",
    "naming",
    "outbox",
    "replay",
    "routes",
    "routing",
    "tls_accept",
    "tls_transport",
    "upstream",
)
_PACKAGE = Path(__file__).resolve().parent
NATIVE_DIR = _PACKAGE.parent.parent / "build" / "native" / "ferry" / "proxy"


def sources_digest() -> str:
    """SHA-256 over the compiled modules' sources and the Python version."""
    digest = hashlib.sha256(sys.version.encode())
    for name in COMPILED:
        digest.update(name.encode() + b"\0" + (_PACKAGE / f"{name}.py").read_bytes())
    return digest.hexdigest()


def build_is_current() -> bool:
    """Whether ``NATIVE_DIR`` holds a build of exactly the current sources."""
    try:
        return (NATIVE_DIR / "STAMP").read_text().strip() == sources_digest()
    except OSError:
        return False


def prefer_native(package_path: list[str]) -> bool:
    """Put the compiled modules first on ``package_path`` if they are current."""
    if os.environ.get("FERRY_PURE_PYTHON") == "1" or not build_is_current():
        return False
    package_path.insert(0, str(NATIVE_DIR))
    return True


def native_loaded() -> bool:
    """Whether the hot path in this process runs compiled."""
    module = sys.modules.get("ferry.proxy.exchange")
    return module is not None and not str(module.__file__).endswith(".py")
