"""Item 2 of "do no harm": the value of kubepods memory.high from before oomguard is
recorded on the node, so an agent that follows one killed mid-episode (SIGKILL, OOM kill)
restores the true original instead of adopting the throttled value; and only one agent
guards a node."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from monitor_fakes import MI, Pods, fake_evictor
from test_node_agent_reload import LOC, NoApi, high_file, reserve_object, write_kubepods

from oomguard.cli import main
from oomguard.monitor.decision.high_record import (
    HighRecord,
    HighRecordError,
    decode_record,
    encode_record,
    trusted_record,
)
from oomguard.monitor.kernel.memory_limit import MemoryLimit
from oomguard.monitor.kube.node_reserve import state_for
from oomguard.monitor.modes.high_record_file import RECORD_FILE
from oomguard.monitor.modes.node_agent import AgentOptions, NodeAgent
from oomguard.monitor.runtime.node_lock import LOCK_FILE, NodeLock, NodeLockHeld
from oomguard.monitor.settings import NodeSettings


@pytest.fixture(autouse=True)
def kubepods(tmp_path):
    write_kubepods(tmp_path, 100 * MI, 4000 * MI)  # memory.high: max


def make_agent(tmp_path, dry_run=False, **options):
    """An agent on the tree as it is: what a successor finds."""
    evictor = fake_evictor(NoApi())
    settings = dataclasses.replace(NodeSettings("node-a", 2000 * MI, 500 * MI), dry_run=dry_run)
    return NodeAgent(
        AgentOptions(tmp_path, LOC, tick_seconds=0.05, **options), settings, Pods(), evictor, []
    )


def set_high(tmp_path, value):
    (tmp_path / "kubepods.slice" / "memory.high").write_text(f"{value}\n")


def test_a_successor_after_a_crash_restores_the_original_not_the_throttled_value(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    first = make_agent(tmp_path, state_dir=state)
    first.assert_memory_high()
    assert high_file(tmp_path) == str(1500 * MI)
    del first  # SIGKILL: no restore
    record = json.loads((state / RECORD_FILE).read_text())
    assert record["original"] == "max"
    assert record["written"] == [str(1500 * MI)]

    second = make_agent(tmp_path, state_dir=state)  # the node left as the first left it
    second.apply_reserve(state_for(reserve_object(300), "node-a", 2000 * MI, None))
    assert high_file(tmp_path) == str(1700 * MI)
    second.restore_memory_high()  # uninstall: SIGTERM
    assert high_file(tmp_path) == "max"
    assert not (state / RECORD_FILE).exists()


def test_a_successor_with_the_same_settings_still_restores_the_original(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    set_high(tmp_path, 1900 * MI)  # what the administrator had set
    make_agent(tmp_path, state_dir=state).assert_memory_high()
    second = make_agent(tmp_path, state_dir=state)
    second.assert_memory_high()  # finds exactly the value it wants
    second.restore_memory_high()
    assert high_file(tmp_path) == str(1900 * MI)


def test_a_dry_run_successor_puts_back_what_a_crashed_agent_set(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    make_agent(tmp_path, state_dir=state).assert_memory_high()
    dry = make_agent(tmp_path, state_dir=state, dry_run=True)
    dry.assert_memory_high()
    assert high_file(tmp_path) == "max"


def test_a_value_someone_else_wrote_since_becomes_the_original(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    make_agent(tmp_path, state_dir=state).assert_memory_high()
    set_high(tmp_path, 1800 * MI)  # the cgroup recreated at boot, or an administrator
    second = make_agent(tmp_path, state_dir=state)
    second.assert_memory_high()
    assert high_file(tmp_path) == str(1500 * MI)
    second.restore_memory_high()
    assert high_file(tmp_path) == str(1800 * MI)


def test_a_crash_between_recording_and_writing_is_trusted():
    written = HighRecord("/k", MemoryLimit(None), (MemoryLimit(10),)).after_write(MemoryLimit(20))
    assert written.written == (MemoryLimit(10), MemoryLimit(20))
    assert trusted_record(written, "/k", MemoryLimit(10)) == written  # the new value not yet in
    assert trusted_record(written, "/k", MemoryLimit(20)) == written
    assert trusted_record(written, "/other", MemoryLimit(10)) == HighRecord(
        "/other", MemoryLimit(10)
    )
    assert trusted_record(written, "/k", MemoryLimit(30)) == HighRecord("/k", MemoryLimit(30))
    assert trusted_record(None, "/k", MemoryLimit(30)) == HighRecord("/k", MemoryLimit(30))


def test_the_record_round_trips_and_junk_is_refused():
    record = HighRecord("/k", MemoryLimit(5), (MemoryLimit(None), MemoryLimit(7)))
    assert decode_record(encode_record(record), "f") == record
    for junk in (b"", b"[]", b'{"version": 1}', b'{"version": 1, "cgroup": "/k", "original": "x"}'):
        with pytest.raises(HighRecordError):
            decode_record(junk, "f")


def test_a_bad_record_is_ignored_and_the_current_value_taken(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / RECORD_FILE).write_text("junk")
    set_high(tmp_path, 1900 * MI)
    agent = make_agent(tmp_path, state_dir=state)
    agent.assert_memory_high()
    agent.restore_memory_high()
    assert high_file(tmp_path) == str(1900 * MI)


def test_a_second_lock_on_the_node_is_refused_naming_the_holder(tmp_path):
    held = NodeLock.acquire(tmp_path / LOCK_FILE)
    with pytest.raises(NodeLockHeld, match=f"pid {os.getpid()}"):
        NodeLock.acquire(tmp_path / LOCK_FILE)
    held.release()
    NodeLock.acquire(tmp_path / LOCK_FILE).release()


def test_the_lock_of_a_killed_agent_is_free_at_once(tmp_path):
    script = (
        "import sys; from pathlib import Path;"
        "from oomguard.monitor.runtime.node_lock import NodeLock;"
        f"NodeLock.acquire(Path({str(tmp_path / LOCK_FILE)!r})); print('locked', flush=True);"
        "sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "locked\n"
    with pytest.raises(NodeLockHeld):
        NodeLock.acquire(tmp_path / LOCK_FILE)
    child.send_signal(signal.SIGKILL)
    child.wait()
    NodeLock.acquire(tmp_path / LOCK_FILE).release()


def _v2_root(root: Path) -> None:
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "kubepods.slice").mkdir()


def test_a_second_agent_on_the_node_exits_with_a_clear_error(tmp_path, capsys):
    _v2_root(tmp_path / "cgroup")
    state = tmp_path / "state"
    state.mkdir()
    held = NodeLock.acquire(state / LOCK_FILE)
    argv = ["monitor", "--node-name", "n", "--cgroup-root", str(tmp_path / "cgroup")]
    assert main([*argv, "--state-dir", str(state)]) == 2
    err = capsys.readouterr().err
    assert "another oomguard agent guards this node" in err
    assert f"pid {os.getpid()}" in err
    assert "Traceback" not in err
    held.release()


def test_an_unusable_state_dir_is_refused_plainly(tmp_path, capsys):
    _v2_root(tmp_path / "cgroup")
    (tmp_path / "file").write_text("")
    argv = ["monitor", "--node-name", "n", "--cgroup-root", str(tmp_path / "cgroup")]
    assert main([*argv, "--state-dir", str(tmp_path / "file" / "state")]) == 2
    assert "cannot use the state directory" in capsys.readouterr().err
