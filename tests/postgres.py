"""A PostgreSQL server for tests: $NAS_TEST_POSTGRES_URL, or a throwaway one started here.

Tests import the fixtures: `from tests.postgres import postgres_db, postgres_url  # noqa: F401`.
The throwaway server lives in /tmp/nas-pg-*, listens on 127.0.0.1 with a random password,
runs as an unprivileged user when we are root (PostgreSQL refuses root), and stops at the
end of the session. Without PostgreSQL binaries the fixtures skip, except when $CI is set:
CI must exercise PostgreSQL, so there they fail.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from nas.store.database import normalize_url

ENV_URL = "NAS_TEST_POSTGRES_URL"
SUPERUSER = "nas"
UNPRIVILEGED = ("postgres", "nobody")


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: PATH first, then the newest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).parent, Path(on_path).resolve().parent] if on_path else []
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()])[
        ::-1
    ]
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A throwaway PostgreSQL cluster in a temporary directory."""

    def __init__(self, bindir: Path) -> None:
        """Pick the user to run as and make the directory it owns."""
        self.bindir = bindir
        self.user = _unprivileged_user() if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="nas-pg-", dir="/tmp" if self.user else None))
        self.port = free_port()
        self.password = secrets.token_hex(16)
        (self.root / "password").write_text(self.password + "\n")
        if self.user is not None:
            record = pwd.getpwnam(self.user)
            for path in (self.root, self.root / "password"):
                os.chown(path, record.pw_uid, record.pw_gid)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the maintenance database."""
        return f"postgresql+psycopg://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """initdb (password auth over TCP, fsync off) and pg_ctl start, waiting until ready."""
        data, password = str(self.root / "data"), str(self.root / "password")
        self._run(
            "initdb",
            "-D",
            data,
            "-U",
            SUPERUSER,
            f"--pwfile={password}",
            "-E",
            "UTF8",
            "--locale=C",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start")

    def stop(self) -> None:
        """Stop the server if it runs, and remove its directory."""
        if (self.root / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self) -> str:
        """The end of the server log, for failure messages."""
        log = self.root / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def _run(self, program: str, *args: str) -> None:
        """Run a PostgreSQL program in the cluster directory, as the unprivileged user if any."""
        command = [str(self.bindir / program), *args]
        if self.user is not None and shutil.which("runuser"):
            command = ["runuser", "-u", self.user, "--", *command]
        elif self.user is not None:
            command = ["su", "-s", "/bin/sh", self.user, "-c", shlex.join(command)]
        done = subprocess.run(command, cwd=self.root, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{shlex.join(command)} failed ({done.returncode}): {done.stderr.strip()}")


def _unprivileged_user() -> str:
    """An existing user PostgreSQL may run as, or a new system user."""
    for name in UNPRIVILEGED:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "nas-postgres"], check=True)
    return "nas-postgres"


def _in_ci() -> bool:
    """Whether $CI says we run in continuous integration."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL database whose user may create databases (for postgres_db)."""
    if os.environ.get(ENV_URL):
        yield normalize_url(os.environ[ENV_URL])
        return
    bindir = find_bindir()
    if bindir is None:
        reason = (
            f"PostgreSQL not found (no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin); "
            f"install postgresql or set {ENV_URL}"
        )
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    server = Server(bindir)
    try:
        server.start()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        tail = server.log_tail()
        server.stop()
        pytest.fail(f"could not start PostgreSQL from {bindir}: {exc}\n{tail}", pytrace=False)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """URL of a fresh, empty database on the test server, dropped after the test."""
    name = f"nas_test_{uuid.uuid4().hex[:12]}"
    admin = make_url(postgres_url)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
