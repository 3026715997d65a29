"""Log lines for people (default) or for log collectors (``--log-format json``).

Structured facts travel as ``extra={"fields": {...}}`` so both formats carry the same
data: text appends them as ``key=value``, JSON puts them at the top level of the object.

The handler sits on the root logger, so the libraries' own loggers (kopf, the kubernetes
client, urllib3) come out in the same format and at the same ``--log-level`` as ours; a
record from outside oomguard carries its logger's name, and kopf's object reference
(``k8s_ref``) becomes the ``object`` field.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TextIO

LOGGER_NAME = "oomguard"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def number(self) -> int:
        return int(getattr(logging, self.name))


LOG_FORMATS = tuple(f.value for f in LogFormat)
LOG_LEVELS = tuple(level.value for level in LogLevel)


def fields_of(record: logging.LogRecord) -> Mapping[str, Any]:
    fields: dict[str, Any] = {}
    if not record.name.startswith(LOGGER_NAME):
        fields["logger"] = record.name
    ref = getattr(record, "k8s_ref", None)  # kopf's per-object loggers
    if isinstance(ref, Mapping):
        fields["object"] = "/".join(
            str(ref[key]) for key in ("kind", "namespace", "name") if ref.get(key)
        )
    own = getattr(record, "fields", None)
    if isinstance(own, Mapping):
        fields.update(own)
    return fields


def _timestamp(created: float) -> str:
    millis = int((created % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if (not text or any(c in text for c in ' "=')) else text


class TextFormatter(logging.Formatter):
    """``2026-11-26T01:00:00.123Z INFO killed pid=12 signal=SIGTERM``"""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record.created), record.levelname, record.getMessage()]
        parts += [f"{k}={_text_value(v)}" for k, v in fields_of(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg`` and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            obj.setdefault(key, value)
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        return json.dumps(obj, default=str, separators=(",", ":"))


def setup_logging(
    log_format: LogFormat | str = LogFormat.TEXT,
    stream: TextIO | None = None,
    level: LogLevel | int = logging.INFO,
) -> logging.Logger:
    """Send every logger's records, ours and the libraries', through one handler on the root
    logger in ``log_format`` at ``level``; idempotent (replaces the handler it installed).
    Returns the ``oomguard`` logger."""
    try:
        chosen = LogFormat(log_format)
    except ValueError:
        raise ValueError(
            f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}"
        ) from None
    root = logging.getLogger()
    logger = logging.getLogger(LOGGER_NAME)
    for holder in (root, logger):
        for old in list(holder.handlers):
            if getattr(old, "_oomguard", False):
                holder.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen is LogFormat.JSON else TextFormatter())
    handler._oomguard = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.number if isinstance(level, LogLevel) else level)
    logger.setLevel(logging.NOTSET)  # the root's level decides, for every logger alike
    logger.propagate = True
    return logger


def log_event(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """Log ``message`` with structured ``fields`` (shown as key=value or JSON keys)."""
    logger.log(level, message, extra={"fields": fields})
