"""``[waf]`` in fly.toml → ``config.waf`` of every machine → the edge's route table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ferry.config import parse_app_config
from ferry.errors import ConfigError
from ferry.model import DesiredState, Machine, MachineConfig, MachineState
from ferry.model.machine_waf import WafConfig
from ferry.proxy.routes import routes_from_machines

IMAGE = "127.0.0.1:5000/web@sha256:" + "a" * 64


def parse(text: str) -> MachineConfig:
    return parse_app_config(text, base_dir=Path("/srv")).machine_config(IMAGE)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_app_config(text, base_dir=Path("/srv"))
    return str(caught.value)


def test_the_issue_example_reaches_the_machine_config() -> None:
    config = parse(
        'app = "web"\n[waf]\n  mode = "block"\n  paranoia = 2\n  inbound_threshold = 5\n'
        "  exclude_rules = [942100]\n"
    )
    assert config.waf == WafConfig(
        mode="block", paranoia=2, inbound_threshold=5, exclude_rules=[942100]
    )


def test_paranoia_4_and_a_body_limit_as_a_size_are_settable() -> None:
    config = parse('[waf]\nmode = "detect"\nparanoia = 4\nbody_limit = "256k"\n')
    assert config.waf is not None
    assert (config.waf.paranoia, config.waf.body_limit) == (4, 256 * 1024)


def test_no_section_means_no_waf_and_a_section_without_mode_detects() -> None:
    assert parse('app = "web"\n').waf is None
    waf = parse("[waf]\nparanoia = 2\n").waf
    assert waf is not None and waf.mode == "detect"  # never blocks unless asked to


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[waf]\nmode = "deny"\n', ':2: [waf] mode must be one of "off", "detect", "block"'),
        ("[waf]\nparanoia = 5\n", "paranoia"),
        ("[waf]\nparanoia = 0\n", "paranoia"),
        ('[waf]\nexclude_rules = ["942100"]\n', "exclude_rules"),
        ("[waf]\nexclude_rules = [0]\n", "exclude_rules"),
        ("[waf]\nexclude_rules = [99901]\n", "Ferry's scoring rule"),
        ('[waf]\nbody_limit = "2m"\n', "body_limit"),
        ("[waf]\ninbound_threshold = 0\n", "inbound_threshold"),
        ('[waf]\nallowed_methods = ["get"]\n', "allowed_methods"),
        ("[waf]\noutbound_threshold = 4\n", "outbound_threshold"),
        ("[waf]\nallowed_methods = []\n", "allowed_methods"),
        ('[waf]\nmod = "block"\n', 'unknown key "mod" in [waf] (did you mean "mode"?)'),
    ],
)
def test_bad_values_name_the_file_line_and_key(text: str, named: str) -> None:
    message = error_of(text)
    assert "fly.toml" in message and named in message


def test_rest_methods_are_allowed_by_default_and_the_list_is_settable() -> None:
    default = parse('[waf]\nmode = "block"\n').waf
    assert default is not None and {"PUT", "PATCH", "DELETE"} <= set(default.allowed_methods)
    narrow = parse('[waf]\nallowed_methods = ["GET", "HEAD"]\n').waf
    assert narrow is not None and narrow.allowed_methods == ["GET", "HEAD"]


def _machine(mid: str, waf: WafConfig | None, created: int) -> Machine:
    return Machine(
        id=mid,
        name=mid,
        app_name="web",
        region="ams",
        instance_id=f"{mid}-i",
        private_ip="fdaa:0:1:0:1:0:1:2",
        host_ip="10.0.0.2",
        state=MachineState.STARTED,
        desired_state=DesiredState.STARTED,
        host_id="ams-1",
        config=MachineConfig(image=IMAGE, waf=waf),
        created_at=datetime(2026, 1, 1, 0, 0, created, tzinfo=UTC),
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_the_edge_follows_the_newest_started_machine_and_off_is_left_out() -> None:
    old = _machine("m1", WafConfig(mode="detect"), 1)
    new = _machine("m2", WafConfig(mode="block", paranoia=3), 2)
    assert routes_from_machines(1, [old, new]).waf == {"web": new.config.waf}
    assert routes_from_machines(1, [old, _machine("m3", WafConfig(mode="off"), 3)]).waf == {}
    assert routes_from_machines(1, [_machine("m4", None, 1)]).waf == {}
