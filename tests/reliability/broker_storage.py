"""Start time, memory and produce throughput of Tansu on memory:// and on s3:// (SeaweedFS), for the
storage decision in docs/reliability.md: `python -m tests.reliability.broker_storage DIR`."""

import asyncio
import os
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from reelscope.infra.broker import free_port, start_broker

from tests.reliability.seaweed import SeaweedS3


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_rss(pid):
    total = rss_mb(pid)
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for c in child.read_text().split():
            total += tree_rss(int(c))
    return total


async def load(bs, mb=50):
    a = AIOKafkaAdminClient(bootstrap_servers=bs)
    await a.start()
    await a.create_topics([NewTopic("m", 2, 1)])
    await a.close()
    p = AIOKafkaProducer(bootstrap_servers=bs, acks="all", linger_ms=5)
    await p.start()
    body = os.urandom(20_000)
    t0 = time.monotonic()
    futs = []
    for i in range(mb * 50):
        futs.append(await p.send("m", body, key=str(i).encode()))
        if len(futs) >= 64:
            await asyncio.gather(*futs)
            futs.clear()
    await asyncio.gather(*futs)
    await p.stop()
    return mb / (time.monotonic() - t0)


def run(storage, env_extra, tag, base):
    os.environ.update(env_extra)
    port = free_port()
    t0 = time.monotonic()
    b = start_broker(port, base / f"{tag}.log", storage=storage)
    ready = time.monotonic() - t0
    time.sleep(1)
    idle = rss_mb(b.pid)
    mbs = asyncio.run(load(f"127.0.0.1:{port}"))
    loaded = rss_mb(b.pid)
    b.kill()
    b.wait()
    t1 = time.monotonic()
    b = start_broker(port, base / f"{tag}.log", storage=storage)
    restart = time.monotonic() - t1
    b.kill()
    b.wait()
    return ready, restart, idle, loaded, mbs


def main() -> None:
    base = Path(sys.argv[1])
    base.mkdir(parents=True, exist_ok=True)
    print(
        "memory: ready {:.3f} s, restart {:.3f} s, RSS idle {:.0f} MB, after 50 MB {:.0f} MB, produce {:.1f} MB/s".format(
            *run("memory://tansu/", {}, "mem", base)
        )
    )
    t0 = time.monotonic()
    s3 = SeaweedS3(base / "weed")
    s3.start()
    s3.create_bucket("tansu")
    weed_start = time.monotonic() - t0
    weed_idle = tree_rss(s3.proc.pid)
    r = run("s3://tansu/", s3.broker_env(), "s3", base)
    weed_loaded = tree_rss(s3.proc.pid)
    t0 = time.monotonic()
    s3.stop()
    weed_stop = time.monotonic() - t0
    print(
        f"s3/seaweedfs: weed start+bucket {weed_start:.1f} s, weed stop {weed_stop:.1f} s, weed RSS idle {weed_idle:.0f} MB, after load {weed_loaded:.0f} MB"
    )
    print(
        "s3: tansu ready {:.3f} s, restart {:.3f} s, RSS idle {:.0f} MB, after 50 MB {:.0f} MB, produce {:.1f} MB/s".format(
            *r
        )
    )


if __name__ == "__main__":
    main()
