"""Fly-Replay: the app asks the edge to send the request somewhere else.

``parse_replay`` reads the response header (``region=ams,lhr;instance=…;
elsewhere=true;state=…``) into a ``ReplayDirective``; ``replay_src`` builds
the ``fly-replay-src`` header the replay target receives. Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.errors import ValidationError
from ferry.proxy.routing import RoutePrefs

__all__ = ["MAX_REPLAYS", "REROUTE", "ReplayDirective", "parse_replay", "replay_src"]

#: Chained replays allowed per request (Fly's PA02 limit).
MAX_REPLAYS = 10


@dataclass(frozen=True, slots=True)
class ReplayDirective:
    """Where the app wants the request replayed."""

    regions: frozenset[str] | None = None  # None: any region
    instance: str | None = None
    prefer_instance: str | None = None
    elsewhere: bool = False
    state: str | None = None

    def prefs(self, source_instance: str) -> RoutePrefs:
        """Routing preferences for the replay coming from ``source_instance``.

        ``prefer_instance`` falls back to the usual rule (within ``region=``)
        when that machine cannot take the request; ``instance`` does not.
        """
        return RoutePrefs(
            force_instance=self.instance,
            prefer_instance=None if self.instance else self.prefer_instance,
            only_regions=self.regions,
            exclude_instance=source_instance if self.elsewhere else None,
            prefer_region=None,
        )


#: Not the app's: the region's edge, reached over the backhaul, had no machine for the
#: request (``Ferry-Hop-Refused``); the first edge routes it again (a retry, not a replay).
REROUTE = ReplayDirective(elsewhere=True)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse_replay(raw: bytes | str) -> ReplayDirective:
    """Read a ``Fly-Replay`` value; raises ``ValidationError`` naming what is wrong.

    ``region=any`` means every region. Continent aliases (``eu``, ``us`` …)
    and ``app=`` (another app) are not supported yet and are rejected.
    """
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    regions: frozenset[str] | None = None
    instance = prefer = state = None
    elsewhere = False
    seen_target = False
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep:
            raise ValidationError(f"Fly-Replay field {part!r} has no value", hint="write key=value")
        value = _unquote(value)
        if key == "region":
            names = {r.strip().lower() for r in value.split(",") if r.strip()}
            if not names:
                raise ValidationError("Fly-Replay region= names no region")
            regions = None if "any" in names else frozenset(names)
            seen_target = True
        elif key == "instance":
            instance = value or None
            seen_target = True
        elif key == "prefer_instance":
            prefer = value or None
            seen_target = True
        elif key == "elsewhere":
            elsewhere = value.lower() == "true"
            seen_target = seen_target or elsewhere
        elif key == "state":
            state = value
        elif key == "app":
            raise ValidationError("Fly-Replay app= (replay to another app) is not supported")
        # unknown fields (timeout, fallback …) are ignored, as a newer app may send them
    if not seen_target:
        raise ValidationError(
            "Fly-Replay names no target", hint="give region=, instance= or elsewhere=true"
        )
    return ReplayDirective(regions, instance, prefer, elsewhere, state)


def replay_src(instance: str, region: str, t_us: int, state: str | None) -> bytes:
    """The ``fly-replay-src`` value sent to the replay target."""
    return f"instance={instance};region={region};t={t_us};state={state or ''}".encode()
