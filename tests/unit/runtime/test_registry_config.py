"""The registry's config file and command."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.cluster.registry import registry_command, write_registry_config
from ferry.errors import ValidationError


def test_config_listens_where_asked_and_stores_under_root(tmp_path: Path) -> None:
    config = write_registry_config(tmp_path, "127.0.0.1:5999")
    text = config.read_text()

    assert 'addr: "127.0.0.1:5999"' in text
    assert f'rootdirectory: "{tmp_path / "data"}"' in text
    assert "level: warn" in text
    assert "auth" not in text
    assert registry_command(config) == ["docker-registry", "serve", str(config)]


@pytest.mark.parametrize("listen", [":5000", "0.0.0.0:5000", "[::]:5000", "127.0.0.1", "x:99999"])
def test_all_interfaces_or_malformed_addresses_are_refused(tmp_path: Path, listen: str) -> None:
    with pytest.raises(ValidationError, match="listen address"):
        write_registry_config(tmp_path, listen)
