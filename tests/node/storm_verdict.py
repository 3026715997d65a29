"""What a guarded storm must show on a node bed, either cgroup driver (issue #11 points 2, 4
and 6): no kernel OOM kill in kubepods, newest first at every decision, the oldest pod's
work kept, the agent alive and scraped through the chart's Service, and the storm's
Deployment evicted at most twice, its replacement held off until the node calmed down.
"""

from __future__ import annotations

import contextlib

from chart_release import NAMESPACE, agent_logs, describe
from k8s_helpers import wait_for
from kubernetes.client import CoreV1Api
from node_bed import progress
from prometheus_scrape import prometheus_value, scrape_report
from storm_pods import (
    PRESSURE_TAINT,
    REPLICATED,
    Ending,
    StormPlan,
    evicted_without_a_decision,
    newest_first_violations,
    parse_decisions,
)
from storm_runs import (
    StormBed,
    clear_storm,
    end_replicated,
    pressure_tainted,
    replicated_evictions,
    replicated_full,
    run_storm,
    storm_plan,
)

AGENT_SELECTOR = "app.kubernetes.io/component=agent"
EVICTED_SERIES = 'sum(oomguard_actions_total{outcome="evicted"})'
DECISION_TO_ACTION_MEAN = (
    "sum(oomguard_decision_to_action_seconds_sum) / sum(oomguard_decision_to_action_seconds_count)"
)


def agent_restarts(core: CoreV1Api) -> int:
    """Restarts of the agent's containers, over its pods."""
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=AGENT_SELECTOR).items
    return sum(c.restart_count for p in pods for c in (p.status.container_statuses or []))


def assert_storm_stopped_newest_first(bed: StormBed, prometheus: str) -> None:
    """Run the storm with the chart installed and judge it."""
    core, namespace = bed.core, "storm-guarded"
    oom_kills = bed.oom_kills()
    restarts = agent_restarts(core)
    taint_seen: list[bool] = []
    plan = storm_plan(bed, namespace)
    try:
        storm = run_storm(bed, plan, taint_seen)
        endings = storm.endings
        assert bed.oom_kills() == oom_kills, f"kernel OOM kills in kubepods: {endings}"
        # a restarted agent gives kubepods back (memory.high max) until it is up again, and
        # its counters start from 0: the guard must live through the storm it stops
        assert agent_restarts(core) == restarts, (
            f"the agent restarted during the storm\n{describe(core, AGENT_SELECTOR)}"
        )
        evicted = endings.count(Ending.EVICTED)
        assert evicted > 0, f"the storm passed memory.max yet nothing was evicted: {endings}"
        assert Ending.OOM_KILLED not in endings and Ending.OTHER not in endings, endings
        # newest first at each decision, among the pods alive then: a pod created after the
        # first evictions may outlive older pods evicted before it existed
        decisions = parse_decisions(agent_logs(core, lines=1_000_000))
        unjudged = evicted_without_a_decision(storm.plan, endings, decisions)
        assert not unjudged, f"evicted, but no decision in the agent's log names them: {unjudged}"
        violations = newest_first_violations(
            storm.plan, decisions, storm.running_since, storm.released_at
        )
        assert not violations, f"an older pod went before a newer one: {violations}, {endings}"
        assert endings[0] is Ending.COMPLETED, endings
        replicated = replicated_evictions(core, namespace)
        try:
            scraped = wait_for(
                "the evictions scraped through the chart's Service",
                lambda: (
                    v
                    if (v := prometheus_value(prometheus, EVICTED_SERIES))
                    and v >= evicted + len(replicated)
                    else None
                ),
                timeout=120,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{scrape_report(prometheus)}") from None
        assert scraped == evicted + len(replicated), (scraped, endings, replicated)
        mean = prometheus_value(prometheus, DECISION_TO_ACTION_MEAN)
        progress(f"agent in its pod: decision -> eviction answer, mean {mean} s")
        assert_replicated_kept_out_of_the_storm(bed, storm.plan, taint_seen)
    except AssertionError:
        print(agent_logs(core))
        clear_storm(bed, plan)
        with contextlib.suppress(AssertionError):  # the tests after it need an untainted node
            wait_for("the taint gone", lambda: not pressure_tainted(core), timeout=300)
        raise


def assert_replicated_kept_out_of_the_storm(
    bed: StormBed, plan: StormPlan, taint_seen: list[bool]
) -> None:
    """Point 4: the Deployment's pod evicted, its replacement kept off the node by the
    operator's taint while the agent evicted (the first replacement may land in the moment
    before the taint and be evicted in turn: at most two evictions, never a loop), then
    scheduled back once the cooldown after the episode passed, and left alone."""
    core, namespace = bed.core, plan.namespace
    evictions = replicated_evictions(core, namespace)
    assert 1 <= len(evictions) <= 2, f"{REPLICATED} evicted {len(evictions)} times: {evictions}"
    assert taint_seen, f"no {PRESSURE_TAINT} taint while the agent evicted"
    wait_for(
        "the memory-pressure taint gone after the cooldown",
        lambda: not pressure_tainted(core),
        timeout=300,
    )
    back = wait_for(
        f"{REPLICATED}'s replacement running on the calm node, holding its memory",
        lambda: replicated_full(bed, plan),
        timeout=600,
        interval=2,
    )
    assert replicated_evictions(core, namespace) == evictions, "evicted again once back"
    progress(f"{namespace}: {REPLICATED} evicted {evictions}; back as {back} after the taint")
    end_replicated(bed, namespace)
