"""A real booted Debian host for tests: a bookworm root built by ``mmdebstrap``, booted
with ``systemd-nspawn`` (systemd as its PID 1), entered with ``nsenter``.

The API (everything else in the package is private to it)::

    from tests.host import Host, Recipe, NGINX, NetnsPath

    with Host.create(NGINX, tmp_path) as host:   # copy of the cached root; destroy() at exit
        host.boot()                              # -> BootReport(state, seconds, failed)
        host.install_project()                   # `au` in the host, installed offline
        host.write_file("/etc/thing.conf", "...")    # or host.path("/etc") for the folder
        done = host.run(["apt-get", "update"], timeout=60)   # proc.Completed
        host.au("status", "--json")
        host.reboot()                            # systemctl reboot; nspawn exits 133; boot
        host.power_cut(); host.boot()            # everything killed at once, boot again

In pytest, the ``debian_host`` fixture gives a booted host with the project installed;
``@pytest.mark.debian_host(recipe=NGINX)`` chooses the recipe (``fixtures.py``).
By hand: ``python -m tests.host --help`` (build, boot, enter, run, reboot, stop, probe).

- ``Recipe`` (``recipe.py``): the packages, older versions asked for (``"nginx=1.22.1-9+
  deb12u9"``), the packages whose newest versions go into the host's local apt repository
  (``/srv/au-updates``, so ``apt-get update && apt-get --download-only upgrade`` works
  inside with no network). ``BASE``, ``NGINX``, ``SERVICES`` (nginx, Redis, PostgreSQL),
  ``PYTHON`` (the host's Python 3.11 one update behind).
- The cache (``cache.py``): ``/var/cache/activeupgrade-tests`` or ``$AU_TEST_HOST_CACHE``;
  roots keyed by the recipe's hash, wheelhouses by the dependencies' hash.
- The network (``network.py``): ``PrivateNetwork()`` (loopback only, the default) or
  ``NetnsPath(Path("/run/netns/NAME"))`` for a namespace the test made.
- Roots of hosts live on the cache's XFS filesystem (reflink copies); a host whose
  creating process died without ``destroy()`` (a killed run) is killed and removed by the
  next ``Host.create`` in the same PID namespace (``sweep_stale``), unless made with
  ``persistent=True``. Each host has a random name (``au-`` + 10 hex digits), so runs
  side by side share no name, root folder, cgroup or nspawn folder.

What works inside a booted host (``python -m tests.host probe``; checked by
``tests/host/test_host.py``). "nsenter" is a command run by ``Host.run``: it has root's
full privileges, like root on a real machine. "unit" is a process the host's systemd
started (``Host.run(service=True)``, a service, an ssh login): it has nspawn's capability
bounding set (no CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_TIME, CAP_SYS_PACCT,
CAP_SYS_RESOURCE, CAP_IPC_LOCK, ...) and system call filter.

    unshare --pid --mount --uts --net --ipc --mount-proc    nsenter ok, unit ok
    unshare --user --map-root-user; identity uid/gid map    nsenter ok, unit ok
    bind mounts, open_tree + move_mount, MOVE_MOUNT_BENEATH,
      mount_setattr, fsopen + fsmount                        nsenter ok, unit ok
    veth pairs (in the host's or a new network namespace)  nsenter ok, unit ok
    inotify, write leases (F_SETLEASE)                      nsenter ok, unit ok
    fanotify_init / fanotify_mark, open_by_handle_at        unit: EPERM from nspawn's
        filter by default; allowed here with --system-call-filter (ALLOWED_SYSCALLS)
    loop devices                                            none in the host's /dev; with
        Host.create(loop_devices=True) the machine's /dev/loop-control and /dev/loopN are
        bound in (--bind=) and losetup works (the devices are the machine's: shared)

So the Upgrade Side (unshare of mount, UTS, network and PID namespaces, bind mounts, a
veth pair) can be built inside a test host with nspawn's defaults.
"""

from __future__ import annotations

from tests.host.machine import BootReport, Host, HostError, Timings
from tests.host.network import NetnsPath, Network, PrivateNetwork
from tests.host.recipe import BASE, FLEET, NGINX, PYTHON, RECIPES, SERVICES, Recipe

__all__ = ["BASE", "FLEET", "NGINX", "PYTHON", "RECIPES", "SERVICES", "BootReport", "Host",
           "HostError", "NetnsPath", "Network", "PrivateNetwork", "Recipe", "Timings"]
