"""Every watch-event handler the operator registers with kopf is a coroutine.

kopf runs a plain function in its thread pool: one thread hop per watch event, and a
5,000-node cluster sends tens of thousands of them at start-up (the reserve indices were
plain functions once, and cost the operator its scale figures)."""

import inspect

import kopf

import oomguard.operator.handlers
import oomguard.operator.pressure_taint_handlers  # noqa: F401 - registers its handlers


def test_every_index_and_event_handler_is_a_coroutine():
    registry = kopf.get_default_registry()
    handlers = [
        *registry._indexing.get_all_handlers(),  # kopf lists them nowhere public
        *registry._watching.get_all_handlers(),
    ]
    assert {h.id for h in handlers} >= {"oomguard_nodes", "oomguard_pressure_tainted"}
    plain = sorted(h.id for h in handlers if not inspect.iscoroutinefunction(h.fn))
    assert plain == []
