"""Log lines: serve's delivery child names itself on each line (same journal as serve)."""

from __future__ import annotations

import json
import logging

from phigate.observability.logs import FIELDS_ATTR, JsonFormatter, LogfmtFormatter


def record() -> logging.LogRecord:
    line = logging.LogRecord("phigate.mta.delivery.scheduler", logging.INFO, __file__, 1,
                             "delivery_started", None, None)
    setattr(line, FIELDS_ATTR, {"owner": "node-a:1"})
    return line


def test_the_child_process_is_named_after_the_logger() -> None:
    text = LogfmtFormatter("delivery").format(record())
    assert " logger=phigate.mta.delivery.scheduler proc=delivery event=delivery_started " \
        "owner=node-a:1" in text
    assert json.loads(JsonFormatter("delivery").format(record()))["proc"] == "delivery"


def test_serve_itself_has_no_proc_field() -> None:
    assert "proc=" not in LogfmtFormatter().format(record())
    assert "proc" not in json.loads(JsonFormatter().format(record()))
