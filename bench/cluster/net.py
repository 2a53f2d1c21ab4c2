"""The simulated hosts: one Linux network namespace each, joined by a veth link to a bridge in a "switch"
namespace, so every host reaches the others only over its own link and faults apply per link.

Addresses come from a public-looking range (44.77.0.0/24) on purpose: the namespaces have no way out, and the
workers' URL guard refuses private addresses for upstream output URLs, as it does in production. The harness
itself reaches the hosts through a "control" link in the root namespace that faults never touch.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field

PREFIX = "cx"  # every namespace and interface the harness creates starts with it; teardown removes only those
SUBNET = "44.77.0"
SWITCH = f"{PREFIX}-switch"
CONTROL_IP = f"{SUBNET}.254"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result


@dataclass
class Host:
    name: str
    ip: str
    ns: str
    faults: list[str] = field(default_factory=list)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.ns, *args, check=check)

    def prefix(self) -> list[str]:
        """The command prefix that runs a program on this host."""
        return ["ip", "netns", "exec", self.ns]


class Network:
    """Builds the switch and the hosts; ``teardown`` removes them even after a half-built start."""

    def __init__(self, names: list[str]) -> None:
        self.hosts = {name: Host(name, f"{SUBNET}.{n + 10}", f"{PREFIX}-{name}") for n, name in enumerate(names)}

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def build(self) -> None:
        teardown_all()
        sh("ip", "netns", "add", SWITCH)
        sw = ["ip", "netns", "exec", SWITCH]
        sh(*sw, "ip", "link", "add", "br0", "type", "bridge")
        sh(*sw, "ip", "link", "set", "br0", "up")
        sh(*sw, "ip", "link", "set", "lo", "up")
        for n, host in enumerate(self.hosts.values()):
            sh("ip", "netns", "add", host.ns)
            peer = f"{PREFIX}p{n}"
            sh("ip", "link", "add", "eth0", "netns", host.ns, "type", "veth", "peer", "name", peer, "netns", SWITCH)
            sh(*sw, "ip", "link", "set", peer, "master", "br0")
            sh(*sw, "ip", "link", "set", peer, "up")
            host.run("ip", "addr", "add", f"{host.ip}/24", "dev", "eth0")
            host.run("ip", "link", "set", "eth0", "up")
            host.run("ip", "link", "set", "lo", "up")
        # the control link: the harness (root namespace) reaches every host without sharing a faulty link
        sh("ip", "link", "add", f"{PREFIX}-ctl", "type", "veth", "peer", "name", f"{PREFIX}pc", "netns", SWITCH)
        sh(*sw, "ip", "link", "set", f"{PREFIX}pc", "master", "br0")
        sh(*sw, "ip", "link", "set", f"{PREFIX}pc", "up")
        sh("ip", "addr", "add", f"{CONTROL_IP}/24", "dev", f"{PREFIX}-ctl")
        sh("ip", "link", "set", f"{PREFIX}-ctl", "up")

    # -- faults ------------------------------------------------------------------------------------------

    def partition(self, name: str, *others: str) -> None:
        """Drop every packet between host ``name`` and each of ``others`` (both directions, on its link)."""
        host = self.hosts[name]
        for other in others:
            ip = self.hosts[other].ip
            host.run("iptables", "-A", "INPUT", "-s", ip, "-j", "DROP")
            host.run("iptables", "-A", "OUTPUT", "-d", ip, "-j", "DROP")

    def heal(self, name: str) -> None:
        self.hosts[name].run("iptables", "-F", check=False)

    def degrade(self, name: str, *, delay_ms: int, loss_pct: float) -> str:
        """Latency and loss on the host's link, both ways (its egress, and the switch's egress towards it), with
        ``tc netem``. A kernel without netem (no ``sch_netem``) gets the loss only, from iptables' random
        match on the host's input and output; the answer says which was applied."""
        if netem_available():
            netem = ["netem", "delay", f"{delay_ms}ms", "loss", f"{loss_pct}%"]
            self.hosts[name].run("tc", "qdisc", "replace", "dev", "eth0", "root", *netem)
            sh("ip", "netns", "exec", SWITCH, "tc", "qdisc", "replace", "dev", self._switch_port(name), "root", *netem)
            return f"netem: {delay_ms} ms delay and {loss_pct}% loss each way"
        drop = ["-m", "statistic", "--mode", "random", "--probability", str(loss_pct / 100), "-j", "DROP"]
        self.hosts[name].run("iptables", "-A", "INPUT", "-i", "eth0", *drop)
        self.hosts[name].run("iptables", "-A", "OUTPUT", "-o", "eth0", *drop)
        return f"iptables: {loss_pct}% loss each way; no delay (this kernel has no sch_netem)"

    def restore(self, name: str) -> None:
        if netem_available():
            self.hosts[name].run("tc", "qdisc", "del", "dev", "eth0", "root", check=False)
            sh("ip", "netns", "exec", SWITCH, "tc", "qdisc", "del", "dev", self._switch_port(name), "root", check=False)
        self.heal(name)

    def _switch_port(self, name: str) -> str:
        return f"{PREFIX}p{list(self.hosts).index(name)}"

    def teardown(self) -> None:
        teardown_all()


_NETEM: list[bool] = []


def netem_available() -> bool:
    """Whether the kernel has tc's netem qdisc (probed once, on a dummy link in a scratch namespace)."""
    if not _NETEM:
        ns = f"{PREFIX}-probe-netem"
        sh("ip", "netns", "add", ns, check=False)
        sh("ip", "netns", "exec", ns, "ip", "link", "add", "d0", "type", "dummy", check=False)
        found = sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "d0", "root", "netem", "delay", "1ms",
                   check=False)  # fmt: skip
        sh("ip", "netns", "del", ns, check=False)
        _NETEM.append(found.returncode == 0)
    return _NETEM[0]


def our_namespaces() -> list[str]:
    out = sh("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].startswith(PREFIX + "-")]


def namespace_pids(ns: str) -> list[int]:
    out = sh("ip", "netns", "pids", ns, check=False).stdout
    return [int(pid) for pid in out.split() if pid.isdigit()]


def teardown_all() -> None:
    """Kill what still runs in the harness's namespaces (by pid), then delete the namespaces and the control
    link. Safe to call at any time, any number of times."""
    for ns in our_namespaces():
        for pid in namespace_pids(ns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for ns in our_namespaces():
        sh("ip", "netns", "del", ns, check=False)
    sh("ip", "link", "del", f"{PREFIX}-ctl", check=False)
