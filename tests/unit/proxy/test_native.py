"""The compiled hot path loads only while it matches the sources; FERRY_PURE_PYTHON opts out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ferry.proxy import native

_PROBE = (
    "import ferry.proxy.exchange as e; from ferry.proxy.native import native_loaded; "
    "print(native_loaded(), e.__file__)"
)


def _probe(**env: str) -> tuple[bool, str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**{k: v for k, v in os.environ.items() if k != "FERRY_PURE_PYTHON"}, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0] == "True", out[1]


def test_the_compiled_modules_load_exactly_when_the_build_matches_the_sources() -> None:
    loaded, path = _probe()
    assert loaded == native.build_is_current(), path
    assert path.startswith(str(native.NATIVE_DIR)) == loaded


def test_pure_python_can_be_forced() -> None:
    loaded, path = _probe(FERRY_PURE_PYTHON="1")
    assert not loaded
    assert path.endswith("ferry/proxy/exchange.py")


def test_a_stale_or_missing_stamp_keeps_the_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FERRY_PURE_PYTHON", raising=False)
    monkeypatch.setattr(native, "NATIVE_DIR", tmp_path)
    path: list[str] = ["src"]
    assert not native.prefer_native(path)  # no build at all
    (tmp_path / "STAMP").write_text("0" * 64 + "\n")
    assert not native.prefer_native(path)  # built from other sources
    assert path == ["src"]
    (tmp_path / "STAMP").write_text(native.sources_digest() + "\n")
    assert native.prefer_native(path)
    assert path == [str(tmp_path), "src"]


def test_the_digest_covers_every_compiled_source() -> None:
    proxy = Path(native.__file__).parent
    for name in native.COMPILED:
        assert (proxy / f"{name}.py").exists(), name
    assert len(native.sources_digest()) == 64
