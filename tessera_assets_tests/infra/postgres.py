"""A throwaway PostgreSQL server on 127.0.0.1 (Debian's postgresql package), for the Dagster
instance's run, event-log and schedule storage."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tessera_assets_tests.infra.ports import free_port


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    db: str
    data_dir: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{self.db}"

    def psql(self, sql: str) -> str:
        out = subprocess.run(
            [_bin("psql"), "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", self.db,
             "-At", "-c", sql], capture_output=True, text=True, check=True, timeout=60)
        return out.stdout.strip()


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    exe = shutil.which(name)
    if exe is None:
        raise FileNotFoundError(
            f"PostgreSQL's {name} not found: install Debian's postgresql (.ci/run does)")
    return exe


def _as_postgres(cmd: list[str]) -> list[str]:
    """The server refuses to run as root: run its commands as the ``postgres`` user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgres_server(db: str = "dagster") -> Iterator[Postgres]:
    """initdb + start on a free loopback port (trust auth, loopback only); stopped and removed
    after. The data folder sits directly under /tmp: the ``postgres`` user must reach it, and
    pytest's temporary folders are private to root."""
    base = Path(tempfile.mkdtemp(prefix="tessera-pg-", dir="/tmp"))
    data = base / "pgdata"
    sock = base / "pgsock"
    data.mkdir(parents=True)
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(data, "postgres")
        shutil.chown(sock, "postgres")
    subprocess.run(_as_postgres([_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                                 "--no-sync"]), check=True, capture_output=True, timeout=120)
    port = free_port()
    opts = f"-h 127.0.0.1 -p {port} -k {sock} -c fsync=off -c max_connections=200"
    subprocess.run(_as_postgres([_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l",
                                 str(data / "server.log"), "-w", "start"]),
                   check=True, capture_output=True, timeout=120)
    server = Postgres("127.0.0.1", port, "postgres", "postgres", data)
    try:
        deadline = time.time() + 30
        while True:
            try:
                server.psql(f"CREATE DATABASE {db}")
                break
            except subprocess.CalledProcessError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        yield Postgres("127.0.0.1", port, "postgres", db, data)
    finally:
        subprocess.run(_as_postgres([_bin("pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
