"""Pods as local processes, for the deploy-topology test: each pod a network namespace of its
own on a bridge (a pod IP, as a Kubernetes CNI gives it, so two pods can both listen on Ray's
fixed ports), each container a process in its own mount and PID namespaces (``unshare``)
that sees only the volumes its spec mounts, its own ``/tmp`` and ``/dev/shm``, and an
``/etc/hosts`` that resolves the cluster's Service names, as cluster DNS would.

Needs root, ``ip`` (iproute2) and ``unshare`` (util-linux); ``missing()`` says what is absent.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

_SUBNET = "10.231.{}.{}"


def missing() -> str | None:
    """Why pods cannot run here, or None."""
    if os.geteuid() != 0:
        return "the pod sandbox needs root (network and mount namespaces)"
    for tool in ("ip", "unshare", "nsenter", "mount"):
        if shutil.which(tool) is None:
            return f"the pod sandbox needs `{tool}`"
    probe = subprocess.run(["unshare", "--mount", "--pid", "--fork", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"unshare refused: {probe.stderr.decode().strip()}"
    return None


def _ip(*args: str, netns: str | None = None) -> None:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    subprocess.run(argv, check=True, capture_output=True)


@dataclass
class Mount:
    source: Path  # a directory (or file) on the machine: the volume's content
    target: str  # the mount path in the container
    read_only: bool = False


@dataclass
class Container:
    """One running container: its process (``unshare``, PID 1's parent) and its log."""

    name: str
    process: subprocess.Popen
    log: Path

    def pid_namespace_members(self) -> list[int]:
        """Host PIDs of the processes in this container's PID namespace."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if not children.exists():
            return []
        first = children.read_text().split()
        if not first:
            return []
        ns = os.readlink(f"/proc/{first[0]}/ns/pid")
        members = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "ns" / "pid") == ns:
                    members.append(int(entry.name))
            except OSError:
                continue
        return members

    def command_lines(self) -> list[str]:
        """The command lines (Ray sets its workers' titles: ``ray::ExecutionWorker``)."""
        lines = []
        for pid in self.pid_namespace_members():
            try:
                lines.append(
                    Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
            except OSError:
                continue
        return lines

    def run_inside(self, argv: list[str]) -> subprocess.CompletedProcess:
        """A command in this container's mount namespace (``kubectl exec``)."""
        [pid1] = (
            Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        )
        return subprocess.run(
            ["nsenter", f"--target={pid1}", "--mount", "--", *argv], capture_output=True, text=True
        )

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30) -> int | None:
        """Signal the container's PID 1 (SIGKILL: the kernel ends every process in it) and
        wait ``timeout`` seconds for it to exit, then kill it; its exit code."""
        if self.process.poll() is None:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            for pid in children.read_text().split() if children.exists() else []:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
        return self.process.returncode


@dataclass
class Pod:
    name: str
    ip: str
    netns: str
    hosts: Path
    containers: list[Container] = field(default_factory=list)

    def kill(self) -> None:
        for container in self.containers:
            container.kill()
        self.containers.clear()


class PodNetwork:
    """A bridge and a network namespace per pod: pods reach each other and the host by IP."""

    _ids = itertools.count(1)

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.index = (os.getpid() + next(self._ids)) % 200 + 20
        self.bridge = f"evbr{self.index}"
        self.gateway = _SUBNET.format(self.index, 1)
        self.hosts: dict[str, str] = {}  # name -> IP, written to every pod's /etc/hosts
        self._pods: list[Pod] = []
        self._next_host = itertools.count(2)
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def pod(self, name: str) -> Pod:
        """A new pod (its namespace and IP; no containers yet)."""
        host = next(self._next_host)
        ip = _SUBNET.format(self.index, host)
        netns = f"ev{self.index}-{name}"[:15]
        veth, peer = f"ev{self.index}h{host}", f"ev{self.index}p{host}"
        _ip("netns", "add", netns)
        _ip("link", "add", veth, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", netns)
        _ip("link", "set", veth, "master", self.bridge)
        _ip("link", "set", veth, "up")
        _ip("addr", "add", f"{ip}/24", "dev", peer, netns=netns)
        _ip("link", "set", peer, "up", netns=netns)
        _ip("link", "set", "lo", "up", netns=netns)
        # A default route, so programs that find their address by routing (Ray) find the
        # pod IP, as in a pod.
        _ip("route", "add", "default", "via", self.gateway, netns=netns)
        pod = Pod(name, ip, netns, self.workdir / f"{name}.hosts")
        self._pods.append(pod)
        return pod

    def _write_hosts(self, pod: Pod) -> None:
        lines = ["127.0.0.1 localhost", f"{pod.ip} {pod.name}"]
        lines += [f"{ip} {name}" for name, ip in self.hosts.items()]
        pod.hosts.write_text("\n".join(lines) + "\n")

    @staticmethod
    def _mount_point(target: str) -> None:
        """A directory on the machine to mount over inside a container. It stays: removing
        a directory that is a mount point in another mount namespace detaches that mount
        there (a second sandbox on the machine would lose its volume)."""
        Path(target).mkdir(parents=True, exist_ok=True)

    def start(
        self,
        pod: Pod,
        name: str,
        argv: list[str],
        env: dict[str, str],
        mounts: list[Mount],
        workdir: str = "/",
    ) -> Container:
        """Start a container of ``pod``: ``argv`` with exactly ``env``, in new mount and PID
        namespaces where ``mounts`` are bound, and /tmp, /dev/shm are its own."""
        self._write_hosts(pod)
        # The container's own /tmp and /dev/shm first, so a volume may be mounted under them
        # (KubeRay mounts one at /tmp/ray); volumes come from ``workdir``, outside /tmp.
        script = [
            "set -e",
            "mount -t tmpfs -o size=8g tmpfs /tmp",
            "mount -t tmpfs -o size=8g tmpfs /dev/shm",
        ]
        for mount in mounts:
            if mount.target.startswith(("/tmp/", "/dev/shm/")):  # on the container's tmpfs
                script.append(f"mkdir -p {shlex.quote(mount.target)}")
            elif mount.source.is_dir():
                self._mount_point(mount.target)
            script.append(
                f"mount --bind {shlex.quote(str(mount.source))} {shlex.quote(mount.target)}"
            )
            if mount.read_only:
                script.append(f"mount -o remount,bind,ro {shlex.quote(mount.target)}")
        script.append(f"mount --bind {shlex.quote(str(pod.hosts))} /etc/hosts")
        script.append(f"cd {shlex.quote(workdir)}")
        script.append(
            "exec env -i "
            + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
            + " "
            + shlex.join(argv)
        )
        log = self.workdir / f"{pod.name}.{name}.log"
        process = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                pod.netns,
                "unshare",
                "--mount",
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                "--propagation",
                "private",
                "--",
                "bash",
                "-c",
                "\n".join(script),
            ],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        container = Container(name, process, log)
        pod.containers.append(container)
        return container

    def close(self) -> None:
        for pod in self._pods:
            pod.kill()
            subprocess.run(["ip", "netns", "del", pod.netns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
