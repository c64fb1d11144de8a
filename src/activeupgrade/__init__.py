"""Active Upgrade for Linux.

Upgrade the software of a running Linux host while its critical applications keep serving:
split the duplexed host into a Production Side and an isolated Upgrade Side, upgrade the
latter, merge by restarting the applications on the upgraded software, then commit or abort.
"""

__version__ = "0.1.0"
