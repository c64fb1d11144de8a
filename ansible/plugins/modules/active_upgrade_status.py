#!/usr/bin/python
# Copyright: Active Upgrade for Linux
# Apache License 2.0 (see LICENSE in the repository)
"""Facts of a host's Active Upgrade instance (``au status``, ``volume list``,
``service list``)."""

from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
---
module: active_upgrade_status
short_description: Facts about a host's Active Upgrade for Linux instance
description:
  - Reads C(au status --json), C(au volume list --json) and C(au service list --json)
    and returns them as the C(active_upgrade) fact.
  - Changes nothing; runs the same in check mode.
version_added: "0.1.0"
extends_documentation_fragment:
  - activeupgrade.fleet.au
author:
  - Active Upgrade for Linux (@activeupgrade)
options:
  probe:
    description:
      - Probe the health of each service (C(au service list --probe)).
    type: bool
    default: false
notes:
  - Fails with the tool's message, hint and exit code when C(au) fails.
"""

EXAMPLES = r"""
- name: Read the instance's state
  activeupgrade.fleet.active_upgrade_status:
  register: au

- name: Refuse to start unless the host is duplexed and idle
  ansible.builtin.assert:
    that:
      - ansible_facts.active_upgrade.duplex
      - ansible_facts.active_upgrade.upgrade_state == 'Idle'
"""

RETURN = r"""
ansible_facts:
  description: The C(active_upgrade) fact.
  returned: success
  type: dict
  contains:
    active_upgrade:
      description:
        - upgrade_state, operational_state, partner_state, request, step, session,
          duplex, allowed_actions, costs, reason, error, pending_resync (bytes, files,
          seconds_estimate), volumes (path, name, role, live, duplex, phase) and services
          (name, backend, running, healthy, pid, unit, enabled).
      type: dict
      returned: success
status:
  description: The whole status document of C(au status --json).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.activeupgrade.fleet.plugins.module_utils.au import (
    Au,
    AuFailure,
    COMMON_OPTIONS,
    facts,
)


def main():
    module = AnsibleModule(
        argument_spec={
            **COMMON_OPTIONS,
            "probe": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    au = Au(module, module.params["executable"], module.params["au_home"])
    try:
        status = au.status()
        volumes = au.json("volume", "list")
        probe = ["--probe"] if module.params["probe"] else []
        services = au.json("service", "list", *probe)
    except AuFailure as failure:
        module.fail_json(**failure.result())
    module.exit_json(changed=False, status=status,
                     ansible_facts={"active_upgrade": facts(status, volumes, services)})


if __name__ == "__main__":
    main()
