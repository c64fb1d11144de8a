"""The probes behind the readiness checks, one module per subject."""

from __future__ import annotations

from activeupgrade.checks.probe import Probe
from activeupgrade.checks.probes import actions, host, services, session, volumes

PROBES: dict[str, Probe] = {
    "AU-C001": volumes.duplex,
    "AU-C002": volumes.exist,
    "AU-C003": volumes.managed,
    "AU-C004": volumes.no_overlap,
    "AU-C005": volumes.same_filesystem,
    "AU-C006": volumes.free_space,
    "AU-C007": host.privileges,
    "AU-C008": host.namespaces,
    "AU-C009": host.link_addresses,
    "AU-C010": services.exist,
    "AU-C011": services.running,
    "AU-C012": services.stoppable,
    "AU-C013": actions.files,
    "AU-C014": actions.on_system_volume,
    "AU-C015": actions.permissions,
    "AU-C016": actions.readiness_actions,
    "AU-C017": actions.packages,
    "AU-C018": session.no_other_session,
    "AU-C019": actions.backup_paths,
    "AU-C020": session.upgrade_side_up,
    "AU-C021": host.packages_staged,
}
