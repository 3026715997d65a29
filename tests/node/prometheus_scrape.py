"""Debian's Prometheus scraping the agent pod through the chart's metrics Service, on either
node bed.

Debian builds Prometheus without Kubernetes discovery (``kubernetes_sd_configs`` is refused),
so the Service's EndpointSlices are read from the apiserver and handed over as file
discovery: the same targets, found the same way, one step earlier.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chart_release import NAMESPACE
from k8s_helpers import wait_for
from kubernetes.client import ApiClient, CoreV1Api, DiscoveryV1Api

PORT = 19090


def agent_service_targets(api_client: ApiClient) -> list[str] | None:
    """``ip:port`` of every ready endpoint of the chart's agent metrics Service; None while
    there is none."""
    services = (
        CoreV1Api(api_client)
        .list_namespaced_service(NAMESPACE, label_selector="app.kubernetes.io/component=agent")
        .items
    )
    if not services:
        return None
    slices = (
        DiscoveryV1Api(api_client)
        .list_namespaced_endpoint_slice(
            NAMESPACE, label_selector=f"kubernetes.io/service-name={services[0].metadata.name}"
        )
        .items
    )
    targets = [
        f"{address}:{port.port}"
        for endpoint_slice in slices
        for endpoint in endpoint_slice.endpoints or []
        if endpoint.conditions is None or endpoint.conditions.ready is not False
        for address in endpoint.addresses
        for port in endpoint_slice.ports or []
    ]
    return targets or None


@contextmanager
def scraping_the_agent(api_client: ApiClient, workdir: Path) -> Iterator[str]:
    """Prometheus up and scraping the agent's Service endpoints; yields its HTTP API's URL."""
    targets = wait_for(
        "the agent's metrics Service endpoints",
        lambda: agent_service_targets(api_client),
        timeout=600,
    )
    discovered = workdir / "agent-targets.json"
    discovered.write_text(json.dumps([{"targets": targets, "labels": {"service": "agent"}}]))
    config = workdir / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                # Prometheus' default timeout: at 2 s, scrapes of the agent timed out while
                # the storm filled the node (emulated CPUs shared with the storm's pods)
                "global": {"scrape_interval": "10s", "scrape_timeout": "10s"},
                "scrape_configs": [
                    {
                        "job_name": "oomguard-agent",
                        "file_sd_configs": [{"files": [str(discovered)]}],
                    }
                ],
            }
        )
    )
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{PORT}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        api = f"http://127.0.0.1:{PORT}"
        try:
            wait_for("prometheus ready", lambda: _ready(api, process), timeout=120)
            yield api
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(log_path.read_text(errors="replace")[-3000:])


def _ready(api: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"prometheus exited with {process.returncode}")
    try:
        with urllib.request.urlopen(f"{api}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def prometheus_value(api: str, promql: str) -> float | None:
    url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def scrape_report(api: str) -> str:
    """Prometheus' view of each target (health, last error, how long the last scrape took)
    and a direct fetch of each target's /metrics, timed: what to read when a value is missing.
    """
    with urllib.request.urlopen(f"{api}/api/v1/targets", timeout=5) as response:
        active = json.load(response)["data"]["activeTargets"]
    lines = []
    for target in active:
        url = target["scrapeUrl"]
        lines.append(
            f"{url}: {target['health']}, last scrape {target['lastScrapeDuration']:.2f} s, "
            f"error {target['lastError']!r}"
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                size = len(response.read())
            lines.append(f"  direct GET: {size} bytes in {time.monotonic() - started:.2f} s")
        except OSError as error:
            lines.append(f"  direct GET failed after {time.monotonic() - started:.2f} s: {error}")
    return "\n".join(lines) or "prometheus has no targets"
