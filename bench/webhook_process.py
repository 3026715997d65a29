"""The eviction webhook alone in its own process, as the operator runs it on a cluster.

bench/eviction_storm.py starts one per webhook round. In the bench's own process the
webhook would share the interpreter lock with the hundreds of threads playing the agents,
and its answers would be late for a reason no cluster has.

Talks over stdin/stdout, one line each way:
  (start)   -> "ready"          serving, the pod cache listed, the CA published
  "clear"   -> "ok"             forget the timings so far (the probes before the storm)
  "timings" -> one JSON line    [[reason, seconds], ...] since the last "clear"
  EOF                           stop and exit
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from kubernetes import config

from oomguard.operator.webhook.webhook_runtime import WebhookOptions, running_webhook


async def serve(options: WebhookOptions, kubeconfig: str) -> None:
    api_client = config.new_client_from_config(config_file=kubeconfig)
    async with running_webhook(options, api_client) as running:
        print("ready", flush=True)
        timings = running.webhook.timings
        while line := (await asyncio.to_thread(sys.stdin.readline)).strip():
            if line == "clear":
                timings.clear()
                print("ok", flush=True)
            elif line == "timings":
                print(json.dumps(list(timings)), flush=True)
            else:
                raise SystemExit(f"unknown command {line!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--agent-username", required=True)
    parser.add_argument("--configuration", required=True)
    parser.add_argument("--cap", type=int, default=0)
    parser.add_argument("--window", type=float, default=60.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # one "denied eviction" warning per capped eviction would bury the figures
    logging.getLogger("oomguard.operator.webhook.webhook_server").setLevel(logging.ERROR)
    options = WebhookOptions(
        port=args.port,
        host="127.0.0.1",
        agent_usernames=(args.agent_username,),
        extra_hosts=("127.0.0.1",),
        configuration=args.configuration,
        max_evictions=args.cap,
        eviction_window_seconds=args.window,
    )
    asyncio.run(serve(options, args.kubeconfig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
