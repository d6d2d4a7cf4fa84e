"""A real asyncssh SFTP server on loopback, and real paramiko clients for its accounts."""

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import dagster as dg
import paramiko
import pytest
import yaml

from collab_pipelines.intake.assets import build_uploads_asset
from collab_pipelines.intake.landing import LocalLandingZone
from collab_pipelines.intake.partitions import upload_partitions
from collab_pipelines.intake.sensors import build_upload_sensor
from collab_pipelines.intake.sftp_accounts import password_hash
from collab_pipelines.intake.sftp_server import ServerConfig, start_server
from collab_pipelines.intake.upload_types import UploadsFile, UploadType, parse_uploads
from collab_pipelines.warehouse.resources import Warehouse

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}

# The tests' own upload type (not the demo's): hourly observations, one integer column.
UPLOADS_YAML = """
upload_types:
  weather_observations:
    description: Hourly observations uploaded for the tests.
    owners: [team:meteorology]
    uploaders: [alice, bob]
    key: [origin, observed_at]
    max_bytes: 2000000  # small, so the oversized case sends 2 MB, not 20
    columns:
      origin: {type: string, choices: [EWR, JFK, LGA]}
      observed_at: {type: datetime}
      temp: {type: float, minimum: -60, maximum: 130}
      dewp: {type: float, required: false}
      humid: {type: float, required: false, minimum: 0, maximum: 100}
      wind_speed: {type: float, required: false, minimum: 0}
      precip: {type: float, required: false, minimum: 0}
      pressure: {type: float, required: false}
      visib: {type: float, required: false}
      station: {type: integer, required: false, minimum: 0}
    combined: {asset: weather_observations, export: weather}
"""


def uploads_config() -> UploadsFile:
    return parse_uploads(yaml.safe_load(UPLOADS_YAML), "uploads.yaml")


def weather_type() -> UploadType:
    return uploads_config().upload_types["weather_observations"]


class SftpServer:
    def __init__(self, root: Path, host_key_path: Path, users_file: Path):
        self.root, self.host_key_path = root, host_key_path
        self.config = ServerConfig.from_file(root, users_file)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.acceptor = asyncio.run_coroutine_threadsafe(
            start_server(self.config, host_key_path, "127.0.0.1", 0), self.loop
        ).result(30)
        self.port = self.acceptor.get_port()

    def known_hosts(self, path: Path) -> Path:
        key = asyncssh.read_private_key(str(self.host_key_path))
        path.write_text(f"[127.0.0.1]:{self.port} {key.export_public_key().decode().strip()}\n")
        return path

    def stop(self) -> None:
        async def shutdown() -> None:
            self.acceptor.close()
            await self.acceptor.wait_closed()
            # Session handlers still waiting on a closed connection would be reported as leaks.
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def landing_root(tmp_path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def collector_key(tmp_path) -> Path:
    key = asyncssh.generate_private_key("ssh-ed25519")
    path = tmp_path / "collector_key"
    key.write_private_key(str(path), format_name="openssh")
    (tmp_path / "collector_key.pub").write_bytes(key.export_public_key())
    return path


@pytest.fixture
def login_limits() -> dict:
    """Generous limits, so tests that log in often are not slowed; tests of the limits override."""
    return {"slow_after": 50, "ban_after": 100, "failure_seconds": 0.2}


@pytest.fixture
def sftp_server(tmp_path, landing_root, collector_key, login_limits) -> Iterator[SftpServer]:
    users = {name: {"password_hash": password_hash(pw)} for name, pw in PASSWORDS.items()}
    # carol logs in with a key only: the OpenSSH client's account in the tests.
    users["carol"] = {"authorized_keys": [(tmp_path / "collector_key.pub").read_text().strip()]}
    users["collector"] = {
        "home": ".",
        "authorized_keys": [(tmp_path / "collector_key.pub").read_text().strip()],
    }
    users_file = tmp_path / "users.yaml"
    users_file.write_text(yaml.safe_dump({"users": users, "login_limits": login_limits}))
    server = SftpServer(landing_root, tmp_path / "host_key", users_file)
    yield server
    server.stop()


@pytest.fixture
def connect(sftp_server, tmp_path):
    """A paramiko SFTP client for an account, verifying the server's pinned host key."""
    clients = []
    known_hosts = sftp_server.known_hosts(tmp_path / "known_hosts")

    def open_client(user: str) -> paramiko.SFTPClient:
        client = paramiko.SSHClient()
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            "127.0.0.1",
            port=sftp_server.port,
            username=user,
            password=PASSWORDS[user],
            allow_agent=False,
            look_for_keys=False,
            timeout=10,
        )
        clients.append(client)
        return client.open_sftp()

    yield open_client
    for client in clients:
        client.close()


@pytest.fixture
def landing(landing_root) -> LocalLandingZone:
    return LocalLandingZone(root=str(landing_root))


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")


class Intake:
    """Drive the real sensor and the real ingestion asset, as the daemon would."""

    def __init__(self, instance: dg.DagsterInstance, landing: LocalLandingZone, warehouse: Warehouse):
        self.instance, self.landing, self.warehouse = instance, landing, warehouse
        self.uploads = uploads_config()
        self.asset = build_uploads_asset(self.uploads.upload_types["weather_observations"])
        self.sensor = build_upload_sensor(self.uploads)
        self.cursor = None

    def tick(self, apply: bool = True):
        # Invoked directly, as the daemon calls it; the daemon then adds the partitions.
        # A context manager, because a resource with teardown (SftpLandingZone) is a generator.
        with dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={"landing_zone": self.landing}
        ) as context:
            result = self.sensor(context)
        if apply:
            for request in result.dynamic_partitions_requests:
                self.instance.add_dynamic_partitions(
                    request.partitions_def_name, list(request.partition_keys)
                )
            self.cursor = result.cursor
        return result

    def ingest(self, key: str, tags: dict | None = None):
        # This instance's state storage, whatever an SFTP server thread or an earlier fixture left
        # current (see no_leaked_defs_state_storage in the root conftest).
        from dagster._core.storage.defs_state.base import set_defs_state_storage

        with set_defs_state_storage(self.instance.defs_state_storage):
            return self._materialize(key, tags)

    def _materialize(self, key: str, tags: dict | None):
        return dg.materialize(
            [self.asset],
            partition_key=key,
            tags=tags,
            instance=self.instance,
            raise_on_error=False,
            resources={"landing_zone": self.landing, "warehouse": self.warehouse},
        )

    def run_all(self, result):
        return [self.ingest(request.partition_key, request.tags) for request in result.run_requests]

    def partition_keys(self):
        return self.instance.get_dynamic_partitions(upload_partitions("weather_observations").name)


@pytest.fixture
def intake_for(instance, landing):
    return lambda warehouse: Intake(instance, landing, warehouse)


@pytest.fixture
def intake(intake_for, warehouse) -> Intake:
    return intake_for(warehouse)


GOOD_CSV = (
    "origin,observed_at,temp,dewp,humid,wind_speed,precip,pressure,visib\n"
    "JFK,2013-01-01 01:00,39.0,26.1,59.4,10.4,0,1012.0,10\n"
    "LGA,2013-01-01 01:00,39.9,24.1,54.8,13.8,0,1012.3,10\n"
    "EWR,2013-01-01 02:00,39.0,27.0,61.6,8.1,0,1012.3,10\n"
)


def upload(sftp: paramiko.SFTPClient, name: str, content: str | bytes) -> None:
    data = content.encode() if isinstance(content, str) else content
    with sftp.open(f"inbox/{name}", "wb") as handle:
        handle.write(data)


def verdict(result) -> tuple[str, bool, str]:
    """An ingestion run's verdict: ("ingested" | "refused", the check passed, its description)."""
    assert result.success, "a verdict on the data never fails the run"
    [materialization] = result.asset_materializations_for_node("weather_observations_uploads")
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "upload_accepted"
    return materialization.metadata["verdict"].value, check.passed, check.description or ""
