"""The autoscaler: idle autostop (Fly's semantics) and regional scale-out (Ferry's).

A pure decision (``decide``) of one snapshot, an explicit ``now`` and the
memory of the previous cycle; a level-triggered loop (``AutoscaleLoop``)
that feeds it and applies its decisions through a narrow ``Fleet``.
See docs/autoscaling.md.
"""

from __future__ import annotations

from ferry.autoscale.decisions import Decision, PolicyMemory, PolicyOutcome, RegionView
from ferry.autoscale.demand import (
    AppDemand,
    EdgeAppSample,
    EdgeSample,
    MachineActivity,
    RegionDemand,
    measure_demand,
)
from ferry.autoscale.distances import RegionDistances, load_latency_file, write_latency_file
from ferry.autoscale.loop import AutoscaleLoop, DecisionRecord, Fleet
from ferry.autoscale.policy import decide

__all__ = [
    "AppDemand",
    "AutoscaleLoop",
    "Decision",
    "DecisionRecord",
    "EdgeAppSample",
    "EdgeSample",
    "Fleet",
    "MachineActivity",
    "PolicyMemory",
    "PolicyOutcome",
    "RegionDemand",
    "RegionDistances",
    "RegionView",
    "decide",
    "load_latency_file",
    "measure_demand",
    "write_latency_file",
]
