"""Which argv and env a machine runs: Docker's entrypoint/cmd rules."""

from __future__ import annotations

import pytest

from ferry.errors import ValidationError
from ferry.model.machine import InitConfig
from ferry.runtime.driver import ImageConfig
from ferry.runtime.process import merge_env, resolve_process

IMAGE = ImageConfig(entrypoint=("/entry",), cmd=("serve", "--port=80"))


def test_image_entrypoint_and_cmd_are_used_by_default() -> None:
    assert resolve_process(IMAGE, InitConfig()) == ("/entry", "serve", "--port=80")


def test_cmd_override_keeps_the_image_entrypoint() -> None:
    assert resolve_process(IMAGE, InitConfig(cmd=["migrate"])) == ("/entry", "migrate")


def test_entrypoint_override_drops_the_image_cmd() -> None:
    assert resolve_process(IMAGE, InitConfig(entrypoint=["/bin/sh"])) == ("/bin/sh",)


def test_entrypoint_and_cmd_overrides_combine() -> None:
    init = InitConfig(entrypoint=["/bin/sh", "-c"], cmd=["echo hi"])
    assert resolve_process(IMAGE, init) == ("/bin/sh", "-c", "echo hi")


def test_exec_replaces_everything() -> None:
    init = InitConfig(exec=["/bin/true"], entrypoint=["/x"], cmd=["y"])
    assert resolve_process(IMAGE, init) == ("/bin/true",)


def test_image_without_any_command_is_rejected_with_advice() -> None:
    with pytest.raises(ValidationError, match="no command") as caught:
        resolve_process(ImageConfig(), InitConfig())
    assert "cmd" in str(caught.value.hint)


def test_machine_env_overrides_image_env() -> None:
    merged = merge_env(("PATH=/bin", "MODE=image", "EMPTY"), {"MODE": "machine", "NEW": "1"})
    assert merged == {"PATH": "/bin", "MODE": "machine", "EMPTY": "", "NEW": "1"}


def test_env_values_may_contain_equals_signs() -> None:
    assert merge_env(("URL=a=b=c",), {}) == {"URL": "a=b=c"}
