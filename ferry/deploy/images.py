"""Build or copy the image of a deploy into the cluster registry, and learn its digest.

The decisions (which source, which command lines) are pure functions; the
commands run through a ``CommandRunner`` so tests can record them. The image
a machine runs is always pinned by digest: ``<registry>/<repo>@sha256:<hex>``.

Sources (``ImageSource.kind``):

- ``dockerfile``   ``buildah bud`` then ``buildah push`` to ``<registry>/<app>:deployment-…``
- ``oci-layout``   a directory with an ``oci-layout`` file, copied with skopeo (``oci:DIR``)
- ``oci-archive``  a ``.tar`` file, copied with skopeo (``oci-archive:FILE``)
- ``cluster``      a reference already in the cluster registry: only its digest is resolved
- ``remote``       any other registry reference, copied with skopeo
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from ferry.errors import ConfigError, RuntimeFailure, UnavailableError

SourceKind = Literal["dockerfile", "oci-layout", "oci-archive", "cluster", "remote"]


class CommandRunner(Protocol):
    def run(self, args: Sequence[str]) -> str:
        """Run ``args`` and return stdout; raise ``RuntimeFailure`` naming the command."""
        ...


class SubprocessRunner:
    """Runs image tools for real. Blocking."""

    def run(self, args: Sequence[str]) -> str:
        try:
            done = subprocess.run(list(args), capture_output=True, text=True, check=False)
        except FileNotFoundError as exc:
            raise RuntimeFailure(
                f"{args[0]} is not installed", hint=f"install it (Debian package {args[0]!r})"
            ) from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise RuntimeFailure(
                f"{args[0]} {args[1] if len(args) > 1 else ''} failed (exit {done.returncode}): "
                + " | ".join(tail)
            )
        return done.stdout


@dataclass(frozen=True)
class ImageSource:
    kind: SourceKind
    location: str  # a path for files, a reference for registries
    context_dir: Path | None = None  # dockerfile builds only
    build_args: tuple[tuple[str, str], ...] = ()
    target: str | None = None


def dockerfile_source(
    dockerfile: Path, context_dir: Path, build_args: dict[str, str], target: str | None
) -> ImageSource:
    """A Dockerfile build; raises ``ConfigError`` naming the file when it does not exist."""
    if not dockerfile.is_file():
        raise ConfigError(
            f"Dockerfile {dockerfile} does not exist",
            hint="fix [build] dockerfile in fly.toml, or pass --image",
        )
    return ImageSource(
        "dockerfile",
        str(dockerfile),
        context_dir=context_dir,
        build_args=tuple(sorted(build_args.items())),
        target=target,
    )


def classify_image(image: str, base_dir: Path, registry: str) -> ImageSource:
    """Decide what ``image`` (``--image`` or ``[build] image``) names.

    A path (relative to ``base_dir``) to an OCI layout or a ``.tar`` wins over a
    reference. Raises ``ConfigError`` for a path that does not exist or is
    neither an OCI layout nor a tar archive.
    """
    looks_like_path = image.startswith(("/", "./", "../", "~")) or image.endswith(".tar")
    path = (base_dir / Path(image).expanduser()).resolve()
    if path.exists() or looks_like_path:
        if path.is_dir() and (path / "oci-layout").is_file():
            return ImageSource("oci-layout", str(path))
        if path.is_file() and path.suffix == ".tar":
            return ImageSource("oci-archive", str(path))
        if not path.exists():
            raise ConfigError(f"image {image!r} does not exist ({path})")
        raise ConfigError(
            f"image {image!r} is neither an OCI layout directory nor a .tar archive",
            hint="point it at a directory with an oci-layout file, or an OCI .tar",
        )
    if image.startswith(f"{registry}/"):
        return ImageSource("cluster", image)
    return ImageSource("remote", image)


def registry_address(platform_info: Mapping[str, Any]) -> str:
    """The registry the agents pull from, as ``GET /v1/platform/info`` names it."""
    registry = platform_info.get("registry")
    if not isinstance(registry, str) or not registry:
        raise UnavailableError(
            "the control plane names no image registry",
            hint="start the cluster with its registry (`ferry cluster up`)",
        )
    return registry


def deployment_tag(now: datetime) -> str:
    """``deployment-20261126T101500Z`` for ``now`` (turned into UTC)."""
    return "deployment-" + now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def local_build_ref(app: str, tag: str) -> str:
    return f"localhost/ferry-build/{app}:{tag}"


def buildah_bud_args(source: ImageSource, local_ref: str) -> list[str]:
    args = ["buildah", "bud", "--isolation", "chroot", "--layers=false", "-f", source.location]
    for key, value in source.build_args:
        args += ["--build-arg", f"{key}={value}"]
    if source.target:
        args += ["--target", source.target]
    args += ["-t", local_ref, str(source.context_dir)]
    return args


def buildah_push_args(local_ref: str, destination: str, digestfile: Path) -> list[str]:
    return [
        "buildah",
        "push",
        "--tls-verify=false",
        "--digestfile",
        str(digestfile),
        local_ref,
        f"docker://{destination}",
    ]


def buildah_rmi_args(local_ref: str) -> list[str]:
    return ["buildah", "rmi", local_ref]


def skopeo_copy_args(source: ImageSource, destination: str, digestfile: Path) -> list[str]:
    transports = {"oci-layout": "oci:", "oci-archive": "oci-archive:", "remote": "docker://"}
    return [
        "skopeo",
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--digestfile",
        str(digestfile),
        transports[source.kind] + source.location,
        f"docker://{destination}",
    ]


def skopeo_inspect_args(reference: str) -> list[str]:
    return ["skopeo", "inspect", "--tls-verify=false", f"docker://{reference}"]


def repository_of(reference: str) -> str:
    """``reg:5000/app:tag`` or ``reg:5000/app@sha256:…`` → ``reg:5000/app``."""
    name = reference.split("@", 1)[0]
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > last_slash else name


def pinned(repository: str, digest: str) -> str:
    """``<repository>@sha256:<hex>``; raises ``RuntimeFailure`` for a digest that is not one."""
    digest = digest.strip()
    if not digest.startswith("sha256:") or len(digest) != 71:
        raise RuntimeFailure(f"the image tool reported {digest!r}, not a sha256 digest")
    return f"{repository}@{digest}"


def publish_image(
    source: ImageSource,
    *,
    app: str,
    registry: str,
    runner: CommandRunner,
    now: datetime,
    say: Callable[[str], None] = lambda _line: None,
) -> str:
    """Put the image of ``source`` into the cluster registry; return the pinned reference.

    Blocking (a build can take minutes). Raises ``RuntimeFailure`` when a tool
    fails. A Dockerfile build removes its local image afterwards, even on failure.
    """
    destination = f"{registry}/{app}:{deployment_tag(now)}"
    if source.kind == "cluster":
        say(f"Resolving {source.location}")
        info = json.loads(runner.run(skopeo_inspect_args(source.location)) or "{}")
        return pinned(repository_of(source.location), str(info.get("Digest", "")))
    with tempfile.TemporaryDirectory(prefix="ferry-deploy-") as scratch:
        digestfile = Path(scratch) / "digest"
        if source.kind == "dockerfile":
            local_ref = local_build_ref(app, deployment_tag(now))
            say(f"Building {source.location} with buildah")
            try:
                runner.run(buildah_bud_args(source, local_ref))
                say(f"Pushing to {destination}")
                runner.run(buildah_push_args(local_ref, destination, digestfile))
            finally:
                _remove_quietly(runner, local_ref)
        else:
            say(f"Copying {source.location} to {destination}")
            runner.run(skopeo_copy_args(source, destination, digestfile))
        try:
            digest = digestfile.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RuntimeFailure(f"the image tool wrote no digest for {destination}") from None
    return pinned(repository_of(destination), digest)


def _remove_quietly(runner: CommandRunner, local_ref: str) -> None:
    # A failed build may have produced no image; leftover cleanup must not hide the real error.
    with contextlib.suppress(RuntimeFailure):
        runner.run(buildah_rmi_args(local_ref))
