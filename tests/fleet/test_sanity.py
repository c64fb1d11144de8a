"""``ansible-test sanity`` on the collection: every sanity test of ansible-core runs and
passes (compile, import, pep8, pylint, validate-modules, yamllint, ...).

``ansible-test`` wants the collection under ``ansible_collections/NAMESPACE/NAME``: the
source is copied there. It makes a virtual environment for each test and bootstraps pip
into it with a script it would download from its own CI file server; the cached copy it
looks for first (``~/.ansible/test/cache/get_pip_X_Y.py``, HOME being a folder of the
test) is ``sanity/get_pip.py``, which uses the pip that Python ships, so the test tools
come from the package index alone. The known exception is in
``ansible/tests/sanity/ignore-2.19.txt`` (the collection is Apache-2.0, not GPLv3).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from activeupgrade import proc
from tests.fleet.playbook import BIN, COLLECTION, tool

GET_PIP = Path(__file__).parent / "sanity" / "get_pip.py"


def test_ansible_test_sanity(tmp_path: Path) -> None:
    tree = tmp_path / "ansible_collections" / "activeupgrade" / "fleet"
    shutil.copytree(COLLECTION, tree, ignore=shutil.ignore_patterns("output", "*.tar.gz"))
    home = tmp_path / "home"
    env = proc.base_env({"HOME": str(home), "PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin"})
    listed = proc.run([tool("ansible-test"), "sanity", "--list-tests"], env=env, cwd=tree,
                      timeout=120).stdout.split()
    from ansible_test._internal.host_configs import (  # type: ignore[import-not-found]
        NativePythonConfig,
    )
    from ansible_test._internal.python_requirements import (  # type: ignore[import-not-found]
        get_venv_packages,
    )

    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    pip = get_venv_packages(NativePythonConfig(version=python))["pip"]
    cache = home / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True)
    shutil.copy(GET_PIP, cache / f"get_pip_{pip.replace('.', '_')}.py")
    done = proc.run([tool("ansible-test"), "sanity", "--python", python, "--local",
                     "--color", "no"], env=env, cwd=tree, timeout=900, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    ran = {line.split('"')[1] for line in out.splitlines()
           if line.startswith('Running sanity test "')}
    assert len(listed) > 20 and set(listed) <= ran, (listed, ran)
