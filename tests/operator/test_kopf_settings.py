import dataclasses
import logging

import kopf
import pytest

import oomguard.operator.handlers  # noqa: F401 - registers every handler of the operator
from oomguard.operator.kopf_settings import NoDiffBase, configure_kopf
from oomguard.operator.options import OperatorOptions


def configured(options):
    settings = kopf.OperatorSettings()
    fields_before = {
        group.name: {f.name for f in dataclasses.fields(getattr(settings, group.name))}
        for group in dataclasses.fields(settings)
    }
    configure_kopf(settings, options)
    # Every attribute we set must be one kopf knows (dataclasses accept typos silently).
    for group, names in fields_before.items():
        extra = set(vars(getattr(settings, group))) - names - {"_" + n for n in names}
        assert not {e for e in extra if not e.startswith("_")}, (group, extra)
    return settings


def test_standalone_by_default_with_our_own_markers():
    settings = configured(OperatorOptions())
    assert settings.persistence.finalizer == "oomguard.io/operator"
    assert settings.persistence.progress_storage.prefix == "oomguard.io"
    assert settings.persistence.diffbase_storage.prefix == "oomguard.io"
    assert settings.peering.standalone is True
    assert settings.peering.mandatory is False
    assert settings.posting.level == logging.WARNING
    assert settings.watching.server_timeout == 300
    assert isinstance(settings.watching.server_timeout, int)  # the apiserver refuses "300.0"
    assert settings.watching.client_timeout == 330
    assert settings.watching.connect_timeout == 10


def test_no_change_handlers_while_no_diff_base_is_kept():
    """NoDiffBase skips the body copy kopf makes per event for change handlers to diff
    against: a change or daemon handler would then see no changes. Register one, and this
    fails until the real storage is back."""
    settings = configured(OperatorOptions())
    assert isinstance(settings.persistence.diffbase_storage, NoDiffBase)
    registry = kopf.get_default_registry()
    assert registry._indexing.get_all_handlers()  # kopf lists them nowhere public
    assert registry._changing.get_all_handlers() == []
    assert registry._spawning.get_all_handlers() == []
    body = kopf.Body({"metadata": {"name": "n", "labels": {"a": "b"}}, "spec": {"x": 1}})
    assert settings.persistence.diffbase_storage.build(body=body) == {}
    assert settings.persistence.diffbase_storage.fetch(body=body) is None


def test_peering_for_ha():
    settings = configured(OperatorOptions(peering="oomguard", posting_level="info"))
    assert settings.peering.standalone is False
    assert settings.peering.mandatory is True
    assert settings.peering.name == "oomguard"
    assert settings.posting.level == logging.INFO


def test_options_from_env():
    options = OperatorOptions.from_env(
        {
            "OOMGUARD_OPERATOR_RESYNC_SECONDS": "5",
            "OOMGUARD_OPERATOR_METRICS_PORT": "9100",
            "OOMGUARD_OPERATOR_PEERING": "p",
            "OOMGUARD_OPERATOR_UNKNOWN": "x",
        }
    )
    assert options.resync_seconds == 5.0
    assert options.metrics_port == 9100
    assert options.peering == "p"
    assert OperatorOptions.from_env({}) == OperatorOptions()


@pytest.mark.parametrize(
    "kwargs", [{"resync_seconds": 0}, {"debounce_seconds": -1}, {"write_concurrency": 0}]
)
def test_bad_options(kwargs):
    with pytest.raises(ValueError, match="must"):
        OperatorOptions(**kwargs)


def test_cli_registers_the_operator_command():
    from oomguard.cli import build_parser

    args = build_parser().parse_args(["operator", "--metrics-port", "9000", "--peering", "ha"])
    from oomguard.operator.operator_command import options_from_args

    options = options_from_args(args)
    assert options.metrics_port == 9000
    assert options.peering == "ha"
    assert options.liveness_endpoint == "http://0.0.0.0:8080/healthz"
