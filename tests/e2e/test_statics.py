"""``[[statics]]`` in a deployed app: the region's edge answers from the image's files."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from ferry.cluster.settings import ClusterSettings
from tests.e2e.conftest import demo_dir, ferry

pytestmark = pytest.mark.e2e

CSS = "body { color: teal }\n"


def curl(cluster: ClusterSettings, *args: str) -> subprocess.CompletedProcess[str]:
    return ferry(cluster, "region", "exec", "ams", "--", "curl", "-s", "-m", "5", *args)


def test_a_deployed_apps_statics_are_served_by_the_edge(
    cluster: ClusterSettings, tmp_path: Path
) -> None:
    app_dir = demo_dir(tmp_path)
    (app_dir / "www" / "assets").mkdir()
    (app_dir / "www" / "assets" / "site.css").write_text(CSS)
    toml = (app_dir / "fly.toml").read_text().replace('app = "hello"', 'app = "assets"')
    toml += '\n[[statics]]\n  guest_path = "/www/assets"\n  url_prefix = "/static/"\n'
    (app_dir / "fly.toml").write_text(toml)
    deployed = ferry(cluster, "deploy", "--regions", "ams", cwd=app_dir)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    url = "http://assets.ferry.test/static/site.css"
    deadline = time.monotonic() + 20
    answer = curl(cluster, "-i", url)
    while "ETag" not in answer.stdout and time.monotonic() < deadline:
        time.sleep(0.2)  # the edge sees the new machine through its watch
        answer = curl(cluster, "-i", url)
    head, _, body = answer.stdout.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 200"), answer.stdout
    assert "Cache-Control: public, max-age=3600" in head
    assert "Content-Type: text/css; charset=utf-8" in head
    assert body == CSS

    missing = curl(cluster, "-i", "http://assets.ferry.test/static/none.css")
    assert missing.stdout.startswith("HTTP/1.1 404")
    assert "The requested URL was not found" in missing.stdout  # busybox httpd: the app
    app_page = curl(cluster, "http://assets.ferry.test/")
    assert "region=ams" in app_page.stdout
