from oomguard.operator.resolution.cluster_resolution import PolicyTally
from oomguard.operator.resolution.policy import InvalidPolicy
from oomguard.operator.resolution.policy_status import policy_status

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"


def conditions(status):
    return {c["type"]: c for c in status["conditions"]}


def test_ready_without_conflict():
    status = policy_status(4, PolicyTally(selected=3, won=2), None, None, T0)
    assert status["observedGeneration"] == 4
    assert status["nodesSelected"] == 3
    assert status["nodesWon"] == 2
    assert status["conflictingNodes"] == []
    cond = conditions(status)
    assert cond["Ready"]["status"] == "True"
    assert cond["Ready"]["reason"] == "Resolved"
    assert cond["Ready"]["message"] == "selects 3 node(s), governs 2"
    assert cond["Ready"]["observedGeneration"] == 4
    assert cond["Conflict"]["status"] == "False"
    assert cond["Ready"]["lastTransitionTime"] == T0


def test_conflict_names_the_nodes_and_policies():
    tally = PolicyTally(selected=2, won=2, conflicting={"n2", "n1"}, conflicting_with={"other"})
    status = policy_status(1, tally, None, None, T0)
    cond = conditions(status)["Conflict"]
    assert cond["status"] == "True"
    assert cond["reason"] == "EqualPriority"
    assert "policies other have the same priority on 2 node(s): n1, n2" in cond["message"]
    assert status["conflictingNodes"] == ["n1", "n2"]
    assert status["conflictingNodeCount"] == 2


def test_long_lists_are_truncated():
    names = {f"n{i:03}" for i in range(120)}
    status = policy_status(
        1, PolicyTally(conflicting=names, conflicting_with={"x"}), None, None, T0
    )
    assert len(status["conflictingNodes"]) == 50
    assert status["conflictingNodeCount"] == 120
    assert "and 110 more" in conditions(status)["Conflict"]["message"]


def test_waiting_nodes_are_mentioned():
    status = policy_status(1, PolicyTally(selected=1, waiting_for_memory={"n9"}), None, None, T0)
    assert (
        "1 node(s) wait for their memory capacity to be reported: n9"
        in (conditions(status)["Ready"]["message"])
    )


def test_invalid_policy_is_not_ready():
    status = policy_status(2, None, InvalidPolicy("p", 2, "reserve: bad"), None, T0)
    cond = conditions(status)
    assert cond["Ready"]["status"] == "False"
    assert cond["Ready"]["reason"] == "InvalidSpec"
    assert cond["Ready"]["message"] == "reserve: bad"
    assert status["nodesWon"] == 0


def test_transition_time_moves_only_on_status_change():
    first = policy_status(1, PolicyTally(selected=1, won=1), None, None, T0)
    same = policy_status(2, PolicyTally(selected=2, won=2), None, first, T1)
    assert conditions(same)["Ready"]["lastTransitionTime"] == T0
    assert conditions(same)["Conflict"]["lastTransitionTime"] == T0
    flipped = policy_status(
        3, PolicyTally(conflicting={"n"}, conflicting_with={"q"}), None, same, T1
    )
    assert conditions(flipped)["Ready"]["lastTransitionTime"] == T0
    assert conditions(flipped)["Conflict"]["lastTransitionTime"] == T1


def test_unchanged_input_gives_an_equal_status():
    tally = PolicyTally(selected=1, won=1)
    first = policy_status(1, tally, None, None, T0)
    assert policy_status(1, tally, None, first, T1) == first
