"""Real tracking back ends for tests: an `mlflow server` on loopback, and PostgreSQL started from
Debian's binaries. Every process started here is stopped by its owner (a fixture finalizer)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MLFLOW = Path(sys.executable).parent / "mlflow"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(Path(stat).parent.name))
    return found


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


@dataclass
class MlflowServer:
    """A running `mlflow server` in its own process group."""

    proc: subprocess.Popen
    port: int
    log: Path
    artifacts: Path
    startup_s: float = 0.0

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> list[int]:
        """SIGTERM to the group, SIGKILL to what is left after 15 s; returns survivors (none)."""
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                self.proc.poll()  # reap the leader
                if not group_members(self.proc.pid):
                    break
                time.sleep(0.2)
            else:
                continue
            break
        self.proc.poll()
        return group_members(self.proc.pid)


def start_mlflow_server(backend_uri: str, folder: Path, timeout: float = 120,
                        port: int | None = None) -> MlflowServer:
    """The lean server (one worker, no job runner) with proxied artifacts under folder, on
    `port` (default: a free one)."""
    artifacts, log = folder / "server-artifacts", folder / "mlflow-server.log"
    artifacts.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(MLFLOW), "server", "--backend-store-uri", backend_uri,
             "--artifacts-destination", artifacts.as_uri(), "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    server = MlflowServer(proc, port, log, artifacts)
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(f"{server.uri}/health", timeout=2) as reply:
                if reply.status == 200:
                    server.startup_s = time.perf_counter() - started
                    return server
        except OSError:
            time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"mlflow server not healthy after {timeout} s:\n{tail(log)}")


# --- PostgreSQL ------------------------------------------------------------------------------

def postgres_bindir() -> Path | None:
    """The folder with initdb, pg_ctl and createdb (PATH, else Debian's newest version)."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "createdb")):
            return folder
    return None


def postgres_account() -> pwd.struct_passwd | None:
    """Who runs the server: ourselves, or `postgres` when we are root (postgres refuses root)."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


@dataclass
class Postgres:
    """A throw-away cluster on 127.0.0.1, trust authentication, superuser `quench`."""

    bindir: Path
    account: pwd.struct_passwd
    root: Path
    port: int = 0
    startup_s: float = 0.0

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _as_owner(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        same = self.account.pw_uid == os.geteuid()
        return subprocess.run(
            [str(self.bindir / cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=120,
            cwd=self.root, user=None if same else self.account.pw_uid,
            group=None if same else self.account.pw_gid, extra_groups=None if same else [],
        )

    def start(self) -> None:
        started = time.perf_counter()
        os.chown(self.root, self.account.pw_uid, self.account.pw_gid)
        done = self._as_owner("initdb", "-D", str(self.data), "-U", "quench", "--auth=trust",
                              "--encoding=UTF8", "--locale=C", "--no-sync")
        _check(done, "initdb")
        self.port = free_port()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -F"
        done = self._as_owner("pg_ctl", "-D", str(self.data), "-l", str(self.root / "pg.log"),
                              "-o", options, "-w", "-t", "60", "start")
        _check(done, "pg_ctl start", self.root / "pg.log")
        done = subprocess.run([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p",
                               str(self.port), "-U", "quench", "mlflow"],
                              capture_output=True, text=True, timeout=60)
        _check(done, "createdb")
        self.startup_s = time.perf_counter() - started

    def uri(self, database: str = "mlflow") -> str:
        return f"postgresql+psycopg2://quench@127.0.0.1:{self.port}/{database}"

    def stop(self) -> bool:
        """Stops the cluster if it runs; True when no postmaster is left."""
        if (self.data / "postmaster.pid").exists():
            self._as_owner("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        stopped = not (self.data / "postmaster.pid").exists()
        shutil.rmtree(self.root, ignore_errors=True)
        return stopped


def new_postgres(bindir: Path, account: pwd.struct_passwd) -> Postgres:
    """A cluster folder under /tmp (pytest's own tmp folders are closed to other users)."""
    return Postgres(bindir, account, Path(tempfile.mkdtemp(prefix="quench-pg-")))


def _check(done: subprocess.CompletedProcess[str], what: str, log: Path | None = None) -> None:
    if done.returncode != 0:
        extra = f"\n{tail(log)}" if log else ""
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}{extra}")
