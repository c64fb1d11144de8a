"""A test callback: every task result, one JSON document a line, into $AU_TEST_RECORD
(the ``json`` stdout callback is no longer part of ansible-core)."""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.callback import CallbackBase  # type: ignore[attr-defined]

DOCUMENTATION = """
name: record_results
type: aggregate
short_description: every task result as a JSON line into $AU_TEST_RECORD
description: [the fleet tests read what each task returned on each host]
"""


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = False

    def _write(self, result: Any, status: str) -> None:
        path = os.environ.get("AU_TEST_RECORD")
        if not path:
            return
        row = {**result._result, "task": result._task.get_name(),
               "host": result._host.get_name(), "run_status": status}
        with open(path, "a") as fh:
            fh.write(json.dumps(row, default=str) + "\n")

    def v2_runner_on_ok(self, result: Any) -> None:
        self._write(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._write(result, "failed")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._write(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._write(result, "unreachable")
