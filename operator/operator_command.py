"""``oomguard operator``: run the kopf operator that resolves MemoryReservePolicy objects into
one NodeMemoryReserve per node."""

from __future__ import annotations

import argparse
import asyncio
import logging

from oomguard.operator.options import OperatorOptions


def configure(parser: argparse.ArgumentParser) -> None:
    defaults = OperatorOptions.from_env()
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=defaults.resync_seconds,
        help="full reconcile period without events (default: %(default)s)",
    )
    parser.add_argument(
        "--debounce-seconds",
        type=float,
        default=defaults.debounce_seconds,
        help="events within this window share one reconcile (default: %(default)s)",
    )
    parser.add_argument(
        "--write-concurrency",
        type=int,
        default=defaults.write_concurrency,
        help="parallel API writes (default: %(default)s)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
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
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def options_from_args(args: argparse.Namespace) -> OperatorOptions:
    return OperatorOptions(
        resync_seconds=args.resync_seconds,
        debounce_seconds=args.debounce_seconds,
        write_concurrency=args.write_concurrency,
        metrics_port=args.metrics_port,
        liveness_endpoint=args.liveness_endpoint or None,
        peering=args.peering,
        posting_level=args.posting_level,
    )


def run(args: argparse.Namespace) -> int:
    import kopf

    from oomguard.operator import handlers  # registers the handlers

    options = options_from_args(args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    assert handlers.start is not None
    asyncio.run(
        kopf.operator(
            clusterwide=True,
            standalone=options.peering is None,
            peering_name=options.peering,
            liveness_endpoint=options.liveness_endpoint,
            memo=kopf.Memo(options=options),
        )
    )
    return 0
