"""pip for a new virtual environment of ``ansible-test``, without the network.

``ansible-test`` bootstraps pip into each of its virtual environments with a ``get-pip.py``
that it downloads from its own CI file server (``~/.ansible/test/cache/get_pip_X_Y.py``
when cached). This one does the same job from what Python ships: ``ensurepip`` installs
the pip wheel bundled with the interpreter, then pip installs what ``ansible-test`` asked
for (``pip==X.Y``) from the package index pip is configured with.
"""

import ensurepip
import os
import runpy
import sys

SKIPPED = ("--no-setuptools", "--no-wheel")
"""get-pip.py's own options (the environment gets neither)."""

if __name__ == "__main__":
    config = os.environ.get("PIP_CONFIG_FILE")
    ensurepip.bootstrap(upgrade=True)
    # ensurepip points PIP_CONFIG_FILE at /dev/null; the install below uses the machine's
    # pip configuration (its index and certificates) again.
    if config is None:
        os.environ.pop("PIP_CONFIG_FILE", None)
    else:
        os.environ["PIP_CONFIG_FILE"] = config
    sys.argv = ["pip", "install", "--quiet", *(a for a in sys.argv[1:] if a not in SKIPPED)]
    runpy.run_module("pip", run_name="__main__", alter_sys=True)
