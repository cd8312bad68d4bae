"""Logging: one line per record, as JSON or text, with every known secret scrubbed."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from mirror.auth.redact import RedactingFilter, Redactor

LOGGER = "mirror"


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "msg", ...extra}`` per line; ``extra={"fields": {...}}`` adds keys."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(
    fmt: str = "text", level: str = "info", *, redactor: Redactor | None = None, stream: TextIO | None = None
) -> logging.Logger:
    logger = logging.getLogger(LOGGER)
    logger.handlers.clear()
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    if redactor is not None:
        handler.addFilter(RedactingFilter(redactor))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger
