import io
import json
import logging

import pytest

from oomguard.monitor.feedback.logs import log_event, setup_logging


def test_text_lines_carry_fields_as_key_value():
    out = io.StringIO()
    logger = setup_logging("text", out)
    log_event(logger, logging.INFO, "killed", pid=12, signal="SIGTERM", cmd="python w.py 3")
    line = out.getvalue().strip()
    assert line.endswith('INFO killed pid=12 signal=SIGTERM cmd="python w.py 3"')
    assert line[:4].isdigit() and "T" in line.split()[0]


def test_json_lines_are_one_object_each():
    out = io.StringIO()
    logger = setup_logging("json", out)
    log_event(logger, logging.WARNING, "decision", victims=[1, 2], amount=10)
    logger.info("plain")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(x) for x in lines)
    assert first["level"] == "warning" and first["msg"] == "decision"
    assert first["victims"] == [1, 2] and first["amount"] == 10
    assert second["msg"] == "plain" and second["logger"] == "oomguard"


def test_fields_never_overwrite_the_envelope():
    out = io.StringIO()
    logger = setup_logging("json", out)
    log_event(logger, logging.INFO, "real", msg="fake")
    assert json.loads(out.getvalue())["msg"] == "real"


def test_setup_is_idempotent_and_rejects_unknown_formats():
    out = io.StringIO()
    setup_logging("text", out)
    logger = setup_logging("text", out)
    logger.info("once")
    assert out.getvalue().count("once") == 1
    with pytest.raises(ValueError, match="log format"):
        setup_logging("xml")
