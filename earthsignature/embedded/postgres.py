"""A private PostgreSQL + PostGIS cluster in a data folder the project owns: the embedded default database.

Production points ``db.url`` at any PostGIS; development, the demo and the tests run this one. It uses
the OS packages' binaries (``initdb``, ``pg_ctl``), listens only on 127.0.0.1 with its Unix socket
inside the data folder, and trusts loopback connections (it is a local, single-user cluster).

PostgreSQL refuses to run as root, so when we are root every server command runs as the unprivileged
``postgres`` user (``runuser``), and the data folder is owned by that user. If that user cannot reach
the project folder (a clone under /root, mode 700), the data lives under /var/lib/earthsignature.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from earthsignature.core.config import state_home
from earthsignature.embedded.ports import free_port

SUPERUSER = "postgres"
TEMPLATE_DB = "template_postgis"
#: Durability settings that are safe to drop for throw-away test clusters (ENVIRONMENT.md).
FAST_UNSAFE_SETTINGS = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}


class ClusterError(RuntimeError):
    """The cluster could not be set up, started or reached; the message says why and what to do."""


def find_bin_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder of initdb/pg_ctl: ``explicit`` (which must hold them), else the newest
    /usr/lib/postgresql/*/bin, else the one on PATH."""
    if explicit:
        candidates = [Path(explicit)]
    else:
        candidates = sorted(
            (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
        if on_path := shutil.which("pg_ctl"):
            candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "pg_ctl").exists() and (folder / "initdb").exists():
            return folder
    where = f"in db.bin_dir={explicit}" if explicit else "in /usr/lib/postgresql/*/bin or on PATH"
    raise ClusterError(
        f"PostgreSQL server binaries (initdb, pg_ctl) not found {where}; run `make setup` (as root it "
        "installs postgresql and postgresql-15-postgis-3)"
    )


def _server_user() -> str | None:
    """The user server commands run as: ``postgres`` when we are root, else ourselves (None)."""
    return SUPERUSER if os.geteuid() == 0 else None


def _reachable_by(user: str | None, path: Path) -> bool:
    """Whether ``user`` can traverse every existing ancestor of ``path``."""
    if user is None:
        return True
    result = subprocess.run(
        ["runuser", "-u", user, "--", "test", "-x", str(_existing_ancestor(path))],
        capture_output=True, check=False,
    )
    return result.returncode == 0


def _existing_ancestor(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def default_data_dir(home: Path) -> Path:
    """``<home>/postgres``, or a folder under /var/lib when the server user cannot reach the state home."""
    wanted = home / "postgres"
    if _reachable_by(_server_user(), home):
        return wanted
    digest = hashlib.sha1(str(home.resolve()).encode()).hexdigest()[:10]
    return Path("/var/lib/earthsignature") / digest / "postgres"


@dataclass
class PostgresCluster:
    """One cluster: ``up()`` makes it exist and run (idempotent), ``down()`` stops it."""

    data_dir: Path
    port: int = 55432
    host: str = "127.0.0.1"
    bin_dir: Path | None = None
    fast_unsafe: bool = False

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self.bin_dir = find_bin_dir(self.bin_dir)
        self._user = _server_user()

    # -- paths and commands -------------------------------------------------------------------------

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "socket"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise ClusterError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    # -- lifecycle ----------------------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def is_running(self) -> bool:
        if not self.initialized:
            return False
        return self._run("pg_ctl", "status", "-D", str(self.data_dir), check=False).returncode == 0

    def init(self) -> None:
        """Create the data folder with initdb (superuser ``postgres``, trust on loopback)."""
        if self.initialized:
            return
        if not _reachable_by(self._user, self.data_dir.parent):
            raise ClusterError(
                f"user {self._user!r} cannot reach {self.data_dir.parent}; choose a data folder it can "
                "traverse (e.g. under /var/lib or /tmp)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user:
            record = pwd.getpwnam(self._user)
            os.chown(self.data_dir, record.pw_uid, record.pw_gid)
        self.data_dir.chmod(0o700)
        self._run("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-instructions")
        self._run_as_owner_mkdir(self.socket_dir)

    def _run_as_owner_mkdir(self, path: Path) -> None:
        path.mkdir(exist_ok=True)
        if self._user:
            record = pwd.getpwnam(self._user)
            os.chown(path, record.pw_uid, record.pw_gid)

    def start(self, timeout: float = 30.0) -> None:
        if self.is_running():
            return
        options = [
            f"-c listen_addresses={self.host}",
            f"-p {self.port}",
            f"-c unix_socket_directories={self.socket_dir}",
        ]
        if self.fast_unsafe:
            options += [f"-c {key}={value}" for key, value in FAST_UNSAFE_SETTINGS.items()]
        result = self._run("pg_ctl", "start", "-w", "-t", str(int(timeout)), "-D", str(self.data_dir),
                           "-l", str(self.log_file), "-o", " ".join(options), check=False)
        if result.returncode != 0:
            tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else result.stderr
            raise ClusterError(f"PostgreSQL did not start on {self.host}:{self.port}:\n{tail}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (clients disconnected cleanly) or ``immediate`` (a crash, for drills)."""
        if self.is_running():
            self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data_dir))

    def up(self, database: str = "earthsignature") -> str:
        """Initialise if needed, start if stopped, create ``database`` with PostGIS; return its URL."""
        self.init()
        self.start()
        self.ensure_template()
        self.create_database(database, exist_ok=True)
        return self.url(database)

    def down(self) -> None:
        self.stop()

    def destroy(self) -> None:
        """Stop and delete the data folder (tests)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- databases ----------------------------------------------------------------------------------

    def url(self, database: str = "earthsignature", driver: str = "postgresql+psycopg") -> str:
        """SQLAlchemy URL of ``database`` in this cluster."""
        return f"{driver}://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        deadline = time.monotonic() + 10
        while True:
            try:
                return psycopg.connect(host=self.host, port=self.port, user=SUPERUSER, dbname=database,
                                       autocommit=True, connect_timeout=5)
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise ClusterError(f"cannot connect to {self.host}:{self.port}: {error}") from error
                time.sleep(0.2)

    def database_exists(self, name: str) -> bool:
        with self.connect() as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None

    def ensure_template(self) -> None:
        """A template database with the postgis extension: new databases clone it in ~0.2 s."""
        if self.database_exists(TEMPLATE_DB):
            return
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
        with self.connect(TEMPLATE_DB) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        with self.connect() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} WITH is_template true").format(
                sql.Identifier(TEMPLATE_DB)))

    def create_database(self, name: str, exist_ok: bool = False) -> None:
        """Create ``name`` as a clone of the PostGIS template."""
        if exist_ok and self.database_exists(name):
            return
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE_DB)))

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def cluster_from_config(db: object) -> PostgresCluster:
    """The private cluster that the ``db`` section of a service config describes."""
    data_dir = Path(db.data_dir) if db.data_dir else default_data_dir(state_home())
    return PostgresCluster(data_dir, port=int(db.port), host=db.host, bin_dir=db.bin_dir)


@contextmanager
def scratch_cluster(prefix: str, fast_unsafe: bool = False) -> Iterator[tuple[PostgresCluster, Path]]:
    """A private cluster (not started) in a new temporary folder the server user can reach, and that folder
    for other scratch files; both are removed afterwards (tests, benchmarks, drills)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    work.chmod(0o755)  # as root the server runs as `postgres`, which must traverse it
    cluster = PostgresCluster(work / "pg", port=free_port(), fast_unsafe=fast_unsafe)
    try:
        yield cluster, work
    finally:
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)
