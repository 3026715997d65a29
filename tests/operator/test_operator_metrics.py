"""The operator's metrics: its version as build_info, and no ``*_created`` series."""

import subprocess
import sys

from oomguard import __version__

# A fresh interpreter: the agent's metrics module switches _created off process-wide, so in
# the test process it would hide a missing switch in the operator.
SCRAPE = """
from prometheus_client import generate_latest
from oomguard.operator.metrics import OperatorMetrics
from oomguard.operator.webhook.webhook_metrics import WebhookMetrics
metrics = OperatorMetrics()
WebhookMetrics(metrics.registry)
metrics.reconciles.labels(trigger="timer").inc()
metrics.reconcile_seconds.observe(0.1)
print(generate_latest(metrics.registry).decode())
"""


def test_operator_exposes_build_info_and_no_created_series():
    text = subprocess.run(
        [sys.executable, "-c", SCRAPE], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert f'oomguard_operator_build_info{{version="{__version__}"}} 1.0' in text
    assert 'oomguard_operator_reconciles_total{trigger="timer"} 1.0' in text
    assert "_created" not in text
