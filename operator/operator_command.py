"""``oomguard operator``: run the kopf operator that resolves MemoryReservePolicy objects into
one NodeMemoryReserve per node."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from oomguard.operator.options import OperatorOptions
from oomguard.wire import arguments

if TYPE_CHECKING:
    from oomguard.operator.webhook.webhook_runtime import WebhookOptions


def configure(parser: argparse.ArgumentParser) -> None:
    defaults = OperatorOptions.from_env()
    parser.add_argument(
        "--resync-seconds",
        type=arguments.positive_seconds,
        default=defaults.resync_seconds,
        help="full reconcile period without events (default: %(default)s)",
    )
    parser.add_argument(
        "--debounce-seconds",
        type=arguments.seconds,
        default=defaults.debounce_seconds,
        help="events within this window share one reconcile (default: %(default)s)",
    )
    parser.add_argument(
        "--write-concurrency",
        type=arguments.positive_int,
        default=defaults.write_concurrency,
        help="parallel API writes (default: %(default)s)",
    )
    parser.add_argument(
        "--metrics-port",
        type=arguments.port,
        default=defaults.metrics_port,
        help="serve Prometheus metrics on this port; 0 disables (default: %(default)s)",
    )
    parser.add_argument(
        "--liveness",
        dest="liveness_endpoint",
        default=defaults.liveness_endpoint or "http://0.0.0.0:8080/healthz",
        help="kopf liveness endpoint URL (default: %(default)s); empty disables",
    )
    parser.add_argument(
        "--peering",
        default=defaults.peering,
        help="run as one of several replicas coordinated by this ClusterKopfPeering "
        "(needs kopf's peering CRD); default: standalone",
    )
    parser.add_argument(
        "--posting-level",
        default=defaults.posting_level,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="lowest log level also posted as Kubernetes Events (default: %(default)s)",
    )
    taint = parser.add_argument_group(
        "memory-pressure taint",
        "oomguard.io/memory-pressure:NoSchedule on nodes whose agent reports MemoryPressure",
    )
    taint.add_argument(
        "--pressure-taint",
        action=argparse.BooleanOptionalAction,
        default=defaults.pressure_taint,
        help="taint nodes under memory pressure (default: %(default)s); off: Nodes are "
        "never written",
    )
    taint.add_argument(
        "--pressure-taint-heartbeat-seconds",
        type=float,
        default=defaults.pressure_taint_heartbeat_seconds,
        help="an agent that has not refreshed its status for this long is gone: its "
        "taint is removed (default: %(default)s)",
    )
    taint.add_argument(
        "--pressure-taint-max-age-seconds",
        type=float,
        default=defaults.pressure_taint_max_age_seconds,
        help="one pressure episode keeps a node tainted at most this long (default: %(default)s)",
    )
    parser.add_argument(
        "--verbose",
        action="store_const",
        dest="log_level",
        const="debug",
        help="the same as --log-level debug",
    )
    hook = parser.add_argument_group(
        "eviction webhook", "confine the node agent's evictions to its own node"
    )
    hook.add_argument(
        "--webhook-port",
        type=arguments.port,
        default=0,
        help="serve the pods/eviction validating webhook (HTTPS) on this port; 0 disables",
    )
    hook.add_argument("--webhook-host", default="0.0.0.0", help="listen address")  # noqa: S104
    hook.add_argument(
        "--webhook-agent",
        action="append",
        default=[],
        metavar="NAMESPACE:SERVICEACCOUNT",
        help="the node agent's ServiceAccount (repeatable); its evictions are confined",
    )
    hook.add_argument(
        "--webhook-cert-dir",
        help="directory with tls.crt and tls.key (a mounted Secret); default: generate a CA "
        "and a serving certificate at start and publish the CA (--webhook-configuration)",
    )
    hook.add_argument("--webhook-service", help="generated certificate: the webhook Service")
    hook.add_argument(
        "--webhook-namespace",
        default=os.environ.get("POD_NAMESPACE"),
        help="generated certificate: the Service's namespace (default: $POD_NAMESPACE)",
    )
    hook.add_argument(
        "--webhook-cert-host",
        action="append",
        default=[],
        help="generated certificate: one more DNS name or IP (repeatable)",
    )
    hook.add_argument(
        "--webhook-configuration",
        help="ValidatingWebhookConfiguration whose caBundle gets the generated CA",
    )
    hook.add_argument(
        "--webhook-max-evictions",
        type=int,
        default=0,
        help="allow the node agents at most this many evictions in any window across the "
        "cluster (more get 429 with Retry-After); 0: no cap (default: %(default)s)",
    )
    hook.add_argument(
        "--webhook-eviction-window",
        type=float,
        default=60.0,
        help="the cap's window in seconds (default: %(default)s)",
    )


def options_from_args(args: argparse.Namespace) -> OperatorOptions:
    return OperatorOptions(
        resync_seconds=args.resync_seconds,
        debounce_seconds=args.debounce_seconds,
        write_concurrency=args.write_concurrency,
        metrics_port=args.metrics_port,
        liveness_endpoint=args.liveness_endpoint or None,
        peering=args.peering,
        posting_level=args.posting_level,
        pressure_taint=args.pressure_taint,
        pressure_taint_heartbeat_seconds=args.pressure_taint_heartbeat_seconds,
        pressure_taint_max_age_seconds=args.pressure_taint_max_age_seconds,
    )


def webhook_options_from_args(args: argparse.Namespace) -> WebhookOptions | None:
    from oomguard.operator.webhook.webhook_runtime import (
        WebhookOptions,
        service_account_username,
    )

    if not args.webhook_port:
        return None
    return WebhookOptions(
        port=args.webhook_port,
        host=args.webhook_host,
        agent_usernames=tuple(service_account_username(a) for a in args.webhook_agent),
        cert_dir=Path(args.webhook_cert_dir) if args.webhook_cert_dir else None,
        service=args.webhook_service,
        namespace=args.webhook_namespace,
        extra_hosts=tuple(args.webhook_cert_host),
        configuration=args.webhook_configuration,
        max_evictions=args.webhook_max_evictions,
        eviction_window_seconds=args.webhook_eviction_window,
    )


def run(args: argparse.Namespace) -> int:
    import kopf

    from oomguard.operator import handlers  # registers the handlers
    from oomguard.operator.metrics import OperatorMetrics

    options = options_from_args(args)
    webhook = webhook_options_from_args(args)
    if getattr(args, "log_level", None) != "debug":
        # kopf logs every handled watch event ("Handler ... succeeded.") at INFO: one line per
        # Node heartbeat. Warnings and errors about objects still show (and are posted).
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    assert handlers.start is not None
    metrics = OperatorMetrics()

    async def operate() -> None:
        await kopf.operator(
            clusterwide=True,
            standalone=options.peering is None,
            peering_name=options.peering,
            liveness_endpoint=options.liveness_endpoint,
            memo=kopf.Memo(options=options, metrics=metrics),
        )

    async def main() -> None:
        if webhook is None:
            await operate()
            return
        from oomguard.operator.webhook.webhook_runtime import running_webhook

        # Every replica serves the webhook (kopf peering pauses only kopf's own handlers).
        async with running_webhook(webhook, handlers._api_client(), metrics.registry):
            await operate()

    asyncio.run(main())
    return 0
