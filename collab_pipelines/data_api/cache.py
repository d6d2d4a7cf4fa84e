"""A dataset's partitions on the data scientist's disk, kept by dataset, partition and ETag.

No Dagster, no warehouse: what `collab-eval try` and `Client.frames_for` read. Each partition is
one Parquet file with the ETag the server gave it; asking again sends that ETag, so a partition
that did not change costs a 304 and no rows. The cache lives in `$COLLAB_CACHE_DIR`, else
`~/.cache/collab-pipelines`, one folder per server.
"""

import hashlib
import io
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CACHE_ENV = "COLLAB_CACHE_DIR"
WHOLE = "_all"
"""The partition name of a dataset without partitions."""
# Partitions asked at once: the server answers a revalidation in a few milliseconds, so a
# year's 365 days are mostly waiting on round trips.
PARALLEL = 8


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "collab-pipelines")


@dataclass
class Fetched:
    """What one read of partitions cost: how many were downloaded, revalidated, or absent."""

    downloaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    bytes: int = 0


class PartitionCache:
    def __init__(self, client, root: Path | None = None):
        self.client = client
        server = hashlib.sha256(client.url.encode()).hexdigest()[:12]
        self.root = (root or cache_root()) / server
        self.last = Fetched()

    def table(self, dataset: str, partitions: Sequence[str] | None) -> pa.Table:
        """The dataset's rows in `partitions` (None: a dataset without partitions), one Arrow table
        in the order given; every partition is revalidated, and downloaded only if it changed."""
        wanted = [WHOLE] if partitions is None else list(partitions)
        fetched = Fetched()
        with ThreadPoolExecutor(PARALLEL) as pool:
            tables = list(pool.map(lambda p: self._partition(dataset, p, fetched), wanted))
        self.last = fetched
        present = [t for t in tables if t is not None]
        if not present:
            return pa.table({})
        return pa.concat_tables(present, promote_options="default")

    def _partition(self, dataset: str, partition: str, fetched: Fetched) -> pa.Table | None:
        folder = self.root / dataset
        data, meta = folder / f"{partition}.parquet", folder / f"{partition}.json"
        etag = None
        if data.exists() and meta.exists():
            etag = json.loads(meta.read_text()).get("etag")
        params = None if partition == WHOLE else {"partition": partition}
        response = self.client.raw_rows(dataset, params, etag)
        if response is None:
            fetched.absent.append(partition)
            return None
        if response.status_code == 304:
            fetched.unchanged.append(partition)
            return pq.read_table(data)
        body = response.content
        table = pq.read_table(io.BytesIO(body))
        folder.mkdir(parents=True, exist_ok=True)
        # Written aside, then moved: a try stopped midway leaves no half file behind an ETag.
        partial = folder / f".{partition}.{os.getpid()}.partial"
        partial.write_bytes(body)
        partial.replace(data)
        meta.write_text(json.dumps({"etag": response.headers.get("ETag")}))
        fetched.downloaded.append(partition)
        fetched.bytes += len(body)
        return table
