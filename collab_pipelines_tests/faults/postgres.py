"""A PostgreSQL cluster of the test's own, to restart at will.

The machine's shared cluster on 5432 serves every other test at the same time: it is never
restarted. This one is made by the installed PostgreSQL's own `initdb` and `pg_ctl` (Debian keeps
them off PATH, under /usr/lib/postgresql/<version>/bin), in a temporary folder, on a free port,
listening on loopback only, with trust authentication. PostgreSQL refuses to run as root: as root,
it runs as the `postgres` user, in a folder that user owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import sqlalchemy as sa

from collab_pipelines_tests.conftest import require_service
from collab_pipelines_tests.e2e.processes import free_port

POSTGRES_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))


class PrivateCluster:
    def __init__(self):
        if not POSTGRES_BIN:
            require_service("PostgreSQL's initdb and pg_ctl", "no /usr/lib/postgresql/<version>/bin/pg_ctl")
        self.bin = POSTGRES_BIN[-1].parent
        self.port = free_port()
        self.as_user: list[str] = []
        # Not under pytest's tmp_path: the postgres user cannot enter root's private folder.
        self.root = Path(tempfile.mkdtemp(prefix="collab-faults-pg-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.root / "data"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run(
            [*self.as_user, str(self.bin / tool), *args], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
        self._run(
            "pg_ctl", action, "-D", str(self.data), "-w", "-o", options, "-l", str(self.root / "log"), *extra
        )

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        """A fast shutdown (every session terminated, open transactions rolled back) and a start."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def new_database(self, name: str) -> str:
        admin = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"
