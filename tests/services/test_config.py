"""The services' handover settings from a real file: parsed into the model, and the
combinations the keeper cannot serve refused at the line that says them."""

from __future__ import annotations

from pathlib import Path

import pytest

from activeupgrade.config.loader import load_file
from activeupgrade.config.model import Handover, Readiness, Switchover
from activeupgrade.errors import ConfigError

BASE = """
[[service]]
name = "cache"
command = ["/usr/bin/redis-server", "--port", "16379"]
handover = "{handover}"
switchover = "{switchover}"
ready = "probe"
hold_limit = "1m30s"

[[service.socket]]
name = "redis"
listen = "127.0.0.1:6379"
{upstream}
"""


def write(tmp_path: Path, handover: str = "proxy", switchover: str = "late-stop",
          upstream: str = 'upstream = "127.0.0.1:16379"') -> Path:
    path = tmp_path / "cache.toml"
    path.write_text(BASE.format(handover=handover, switchover=switchover, upstream=upstream))
    return path


def test_handover_settings_reach_the_model(tmp_path: Path) -> None:
    [svc] = load_file(write(tmp_path)).services
    assert svc.handover is Handover.PROXY and svc.switchover is Switchover.LATE_STOP
    assert svc.ready is Readiness.PROBE and svc.hold_limit == 90.0
    assert svc.sockets[0].upstream == "127.0.0.1:16379"


@pytest.mark.parametrize(("kwargs", "line", "words"), [
    ({"switchover": "overlap"}, 6, "needs a shared socket"),
    ({"upstream": ""}, 10, "needs the private address"),
    ({"handover": "nginx", "switchover": "overlap"}, 13, "only used with handover"),
    ({"upstream": 'upstream = "localhost:0"'}, 13, "no valid port"),
])
def test_incoherent_handover_is_refused_at_its_line(tmp_path: Path, kwargs: dict[str, str],
                                                    line: int, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_file(write(tmp_path, **kwargs))
    assert f"cache.toml:{line}:" in info.value.message and words in info.value.message
