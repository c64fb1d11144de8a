# Copyright: Active Upgrade for Linux
# Apache License 2.0 (see LICENSE in the repository)
"""The options every module of this collection shares: which instance, which ``au``."""

from __future__ import annotations

__metaclass__ = type


class ModuleDocFragment:
    """Documentation of ``module_utils.au.COMMON_OPTIONS`` (kept beside each other)."""

    DOCUMENTATION = r"""
options:
  au_home:
    description:
      - The instance folder (C(AU_HOME)); the default instance when empty.
    type: path
    default: ""
  executable:
    description:
      - The C(au) command (a name on the PATH or a path).
    type: str
    default: au
"""
