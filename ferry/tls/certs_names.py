"""Which host names may have a certificate: pure checks with sentences a user understands."""

from __future__ import annotations

import ipaddress
import re

from ferry.errors import ValidationError

__all__ = ["check_hostname", "normalize_hostname"]

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_MAX_NAME = 253


def normalize_hostname(raw: str) -> str:
    """Lowercase, without a trailing dot or surrounding spaces."""
    return raw.strip().lower().removesuffix(".")


def check_hostname(raw: str, cluster_domain: str) -> str:
    """The normalized host name, or ``ValidationError`` saying what is wrong with it.

    Accepts DNS names of at least two labels, and ``*.example.com`` (one wildcard label,
    leftmost: obtained by DNS-01). Refuses IP addresses, URLs, bad labels, and names
    in the cluster's own domain (``<app>.<domain>`` is served with the cluster's CA).
    """
    name = normalize_hostname(raw)
    hint = "give a DNS name such as www.example.com or *.example.com"
    if not name:
        raise ValidationError("no host name given", hint=hint)
    if "://" in name or "/" in name or ":" in name:
        raise ValidationError(f"{raw!r} is not a host name (a URL or a port?)", hint=hint)
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise ValidationError(
            f"{raw!r} is an IP address; certificates here are for host names", hint=hint
        )
    if len(name) > _MAX_NAME:
        raise ValidationError(f"host name {raw!r} is longer than {_MAX_NAME} characters")
    labels = name.split(".")
    wildcard = labels[0] == "*"
    rest = labels[1:] if wildcard else labels
    if len(rest) < 2:
        raise ValidationError(f"{raw!r} is not a fully qualified host name", hint=hint)
    for label in rest:
        if not _LABEL.match(label):
            raise ValidationError(
                f"host name {raw!r} has an invalid label {label!r}",
                hint="labels are letters, digits and inner hyphens, 1 to 63 characters; "
                "only the leftmost may be *",
            )
    domain = normalize_hostname(cluster_domain)
    if domain and (name == domain or name.endswith("." + domain)):
        raise ValidationError(
            f"{name} is in the cluster's own domain {domain}",
            hint=f"apps are served at <app>.{domain} with the cluster's certificate already",
        )
    return name
