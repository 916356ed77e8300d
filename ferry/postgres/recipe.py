"""What goes into the Postgres image, and the keys that decide when to build it again. Pure.

The image has two layers:

- the **base**: a Debian bookworm root filesystem made by ``mmdebstrap`` from
  Debian's own packages (``PACKAGES``), without docs, man pages, locales or
  LLVM (Postgres' JIT, 130 MB, is switched off). Its key (``base_key``) is a
  hash of everything that shapes it: suite, sources, packages, dpkg filters,
  hooks and ``BUILDER_VERSION``. Building it takes about a minute.
- **Ferry's files**: the entrypoint and its config renderer (copied from this
  package, so the code that runs in the image is the code the unit tests test)
  and the post-bootstrap script. Its key is a hash of the files' bytes and
  modes; it builds in well under a second.

The image's key (its tag) combines both: editing the entrypoint makes a new
image on the same base. Bump ``BUILDER_VERSION`` when the build itself changes
in a way the inputs above do not show.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from ferry.postgres import apt_sources

__all__ = [
    "BUILDER_VERSION",
    "DPKG_FILTERS",
    "IMAGE_REPOSITORY",
    "PACKAGES",
    "SUITE",
    "base_key",
    "ferry_files",
    "image_config",
    "image_key",
    "mmdebstrap_argv",
    "sources",
]

BUILDER_VERSION = "1"
SUITE = "bookworm"


def sources() -> tuple[str, ...]:
    """This machine's apt entries for ``SUITE`` (``ferry.postgres.apt_sources``)."""
    return apt_sources.read(SUITE)


# Patroni 3.0.2 talks to etcd 3.4 over its v3 gRPC gateway (``etcd3:`` in its
# config); it still imports python-etcd for its exception classes.
PACKAGES = (
    "postgresql-15",
    "patroni",
    "python3-etcd",
    "etcd-server",
    "iproute2",
    "ca-certificates",
    "procps",
)
DPKG_FILTERS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/i18n/*",
    # Postgres' JIT: LLVM and Z3 are hard dependencies but only llvmjit.so loads them.
    "path-exclude=/usr/lib/x86_64-linux-gnu/libLLVM-*",
    "path-exclude=/usr/lib/x86_64-linux-gnu/libz3.so*",
    "path-exclude=/usr/lib/postgresql/15/lib/llvmjit*",
    "path-exclude=/usr/lib/postgresql/15/lib/bitcode/*",
)
# postgresql-common makes a "main" cluster on install; Patroni makes its own.
CUSTOMIZE_HOOKS = (
    'rm -rf "$1/var/lib/postgresql/15/main" "$1/etc/postgresql/15/main"',
    'rm -rf "$1/var/cache/apt" "$1/var/lib/apt/lists" "$1/var/log/"*.log',
)
IMAGE_REPOSITORY = "ferry-postgres"
LIB_DIR = "usr/local/lib/ferry-postgres"

ENTRYPOINT_SHIM = f"""#!/bin/sh
# Ferry's Postgres entrypoint: Patroni (and an etcd member) from the machine's env.
PYTHONPATH=/{LIB_DIR} exec /usr/bin/python3 -m ferry.postgres.entrypoint "$@"
"""

# Patroni runs this once, after initdb, with a libpq URL of the superuser as $1.
# The operator's password comes from the environment (psql \\getenv), never argv.
POST_BOOTSTRAP = """#!/bin/sh
set -eu
exec /usr/lib/postgresql/15/bin/psql "$1" -v ON_ERROR_STOP=1 -q <<'SQL'
\\getenv operator_password OPERATOR_PASSWORD
CREATE ROLE postgres WITH LOGIN SUPERUSER PASSWORD :'operator_password';
SQL
"""


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def base_key() -> str:
    """16 hex digits naming the base layer's inputs; equal keys mean an equal recipe."""
    return _digest(
        {
            "builder": BUILDER_VERSION,
            "suite": SUITE,
            "sources": sources(),
            "packages": sorted(PACKAGES),
            "dpkg": DPKG_FILTERS,
            "hooks": CUSTOMIZE_HOOKS,
        }
    )


def ferry_files() -> dict[str, tuple[bytes, int]]:
    """Ferry's layer: path in the image → (bytes, mode). Reads this package's sources."""
    package = resources.files("ferry.postgres")
    return {
        f"{LIB_DIR}/ferry/__init__.py": (b"", 0o644),
        f"{LIB_DIR}/ferry/postgres/__init__.py": (b"", 0o644),
        f"{LIB_DIR}/ferry/postgres/patroni_config.py": (
            package.joinpath("patroni_config.py").read_bytes(),
            0o644,
        ),
        f"{LIB_DIR}/ferry/postgres/entrypoint.py": (
            package.joinpath("entrypoint.py").read_bytes(),
            0o644,
        ),
        f"{LIB_DIR}/ferry/postgres/primary_proxy.py": (
            package.joinpath("primary_proxy.py").read_bytes(),
            0o644,
        ),
        "usr/local/bin/ferry-postgres": (ENTRYPOINT_SHIM.encode(), 0o755),
        "usr/local/bin/ferry-postgres-post-bootstrap": (POST_BOOTSTRAP.encode(), 0o755),
    }


def image_key(base: str, files: dict[str, tuple[bytes, int]]) -> str:
    """The image's tag: its base key plus a hash of Ferry's files (``<base>-<files>``)."""
    hashed = {
        path: [hashlib.sha256(data).hexdigest(), mode] for path, (data, mode) in files.items()
    }
    return f"{base}-{_digest(hashed)[:8]}"


def mmdebstrap_argv(output: Path) -> list[str]:
    """The ``mmdebstrap`` command that writes the base root filesystem as a tar to ``output``."""
    argv = [
        "mmdebstrap",
        "--quiet",
        "--variant=essential",
        "--mode=root",
        "--format=tar",
        # No device nodes in the image: the runtime gives every machine its own /dev.
        "--skip=output/dev",
        "--include=" + ",".join(PACKAGES),
    ]
    argv += [f"--dpkgopt={line}" for line in DPKG_FILTERS]
    argv += [f"--customize-hook={hook}" for hook in CUSTOMIZE_HOOKS]
    return [*argv, SUITE, str(output), *sources()]


def image_config(diff_ids: list[str], key: str) -> dict[str, Any]:
    """The OCI image configuration: entrypoint, environment, ports, layers."""
    return {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/usr/local/bin/ferry-postgres"],
            "Env": [
                "PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                "LANG=C.UTF-8",
                "PGDATA=/data/postgresql",
            ],
            "ExposedPorts": {"5432/tcp": {}, "8008/tcp": {}, "2379/tcp": {}, "2380/tcp": {}},
            "Labels": {
                "org.opencontainers.image.title": "Ferry Postgres (PostgreSQL 15, Patroni, etcd)",
                "dev.ferry.postgres.key": key,
            },
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created_by": f"mmdebstrap {SUITE}: {' '.join(PACKAGES)}"},
            {"created_by": "ferry postgres image: entrypoint and scripts"},
        ],
    }
