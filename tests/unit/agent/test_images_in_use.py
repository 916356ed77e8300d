"""Which images the agent tells the image cache GC to keep."""

from __future__ import annotations

from ferry.agent.housekeeping import images_in_use
from ferry.model import DesiredState, ImageRef, MachineState
from ferry.runtime.driver import ContainerState

from .test_reconcile import container, machine


def test_every_machine_assigned_here_keeps_its_image_and_resolved_digest() -> None:
    started = machine("m1")
    stopped = machine("m2", desired=DesiredState.STOPPED, state=MachineState.STOPPED)
    stopped = stopped.model_copy(
        update={
            "config": stopped.config.model_copy(update={"image": "reg/app:v2"}),
            "image_ref": ImageRef(digest="sha256:" + "c" * 64),
        }
    )

    assert images_in_use([started, stopped], []) == {
        "r/app@sha256:00",
        "reg/app:v2",
        "sha256:" + "c" * 64,
    }


def test_a_destroyed_machine_keeps_its_image_only_while_its_container_remains() -> None:
    gone = machine("m1", desired=DesiredState.DESTROYED, state=MachineState.DESTROYED)

    assert images_in_use([gone], []) == set()
    assert images_in_use([gone], [container(gone, ContainerState.EXITED)]) == {"r/app@sha256:00"}
