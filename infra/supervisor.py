"""The supervisor `reelscope up` leaves running: restarts what died, and recovers from a broker that lost
its data.

Every `TICK_S` it looks at the stack's pid files. A dead process is started again after a backoff that
doubles with each restart in a row (1 s up to 30 s; a process that stayed up for a minute starts over), and
each restart is one log line in state_dir/logs/supervisor.log. The broker is restarted only if `up` started
it (its pid file exists). A broker that lost its data (the embedded broker on memory storage restarted, or
any broker that no longer has the catalog's topics) leaves every consumer with positions and state of the
old topics, so the supervisor writes the recovery marker (sinks/recovery.py) and restarts the serve process
and every group: serve recreates the topics and re-ingests the unfinished videos.

Run as `python -m reelscope.infra.supervisor --processes N` (stack.up does); SIGTERM stops it, and `down`
stops it first so that nothing is restarted while the stack goes down.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from dataclasses import dataclass, field

from reelscope.infra.broker import missing_topics, port_open, start_broker
from reelscope.infra.core.settings import Settings
from reelscope.infra.stack import (
    broker_address,
    log_dir,
    process_groups,
    run_dir,
    running,
    spawn,
    stop_processes,
)
from reelscope.sinks.recovery import BROKER_LOST, marker

log = logging.getLogger("reelscope.supervisor")

TICK_S = 0.5
TOPIC_CHECK_S = 3.0
STABLE_S = 60.0
MAX_BACKOFF_S = 30.0


@dataclass
class Restarts:
    """Backoff per process name: restarts in a row, when the last one was, when the next may be."""

    count: dict[str, int] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)

    def due(self, name: str, now: float) -> bool:
        if now - self.last.get(name, 0.0) > STABLE_S:
            self.count[name] = 0
        n = self.count.get(name, 0)
        return n == 0 or now >= self.last[name] + min(MAX_BACKOFF_S, 2.0 ** (n - 1))

    def note(self, name: str, now: float) -> int:
        self.count[name] = self.count.get(name, 0) + 1
        self.last[name] = now
        return self.count[name]


def process_args(name: str) -> list[str]:
    """`reelscope` arguments of a stack process by its pid-file name (serve, group-GROUP-I)."""
    if name == "serve":
        return ["serve"]
    group = name.removeprefix("group-").rpartition("-")[0]
    return ["process", "--group", group, "--name", name]


class Supervisor:
    def __init__(self, settings: Settings, processes_per_group: int) -> None:
        self.settings = settings
        self.names = ["serve"] + [
            f"group-{g}-{i}" for g in process_groups(settings) for i in range(processes_per_group)
        ]
        self.owns_broker = (run_dir(settings) / "broker.pid").exists()
        self.restarts = Restarts()
        self.stop = False

    def start(self, name: str, why: str) -> None:
        now = time.monotonic()
        if not self.restarts.due(name, now):
            return
        n = self.restarts.note(name, now)
        if name == "broker":
            _, port = broker_address(self.settings)
            proc = start_broker(port, log_dir(self.settings) / "broker.log")
            (run_dir(self.settings) / "broker.pid").write_text(str(proc.pid))
            pid = proc.pid
        else:
            pid = spawn(self.settings, name, process_args(name))
        log.warning("restarted %s (%s; restart %d in a row, pid %d)", name, why, n, pid)

    def broker_lost(self, why: str, restart_broker: bool = False) -> None:
        """Every consumer read topics that no longer exist: restart serve (it recreates them and re-ingests)
        and every group, from the start of the new topics. A dead broker of ours is started only after they
        are gone, so that none of them writes the rest of an old video into the new broker."""
        log.warning("%s (%s): restarting serve and every group to recover", BROKER_LOST, why)
        marker(self.settings).write_text(f"{time.time():.3f} {why}\n")
        alive = running(self.settings)
        grace_s = 0.0 if restart_broker else 2.0  # with the broker gone a graceful stop cannot commit anyway
        stop_processes(self.settings, {n: p for n, p in alive.items() if n in self.names}, grace_s=grace_s)
        if restart_broker:
            self.start("broker", "it exited")
        for name in self.names:
            self.restarts.count.pop(name, None)
            self.start(name, BROKER_LOST)

    def tick(self, checked_topics: float) -> float:
        alive = running(self.settings)
        host, port = broker_address(self.settings)
        if self.owns_broker and "broker" not in alive and not port_open(host, port):
            if self.restarts.due("broker", time.monotonic()):
                self.broker_lost("the broker exited; on memory storage its data is gone", restart_broker=True)
            return time.monotonic()
        if time.monotonic() - checked_topics > TOPIC_CHECK_S and port_open(host, port):
            try:
                missing = asyncio.run(asyncio.wait_for(missing_topics(self.settings), 10))
            except Exception as exc:  # an unreachable broker is the broker branch's business
                log.info("topic check failed: %s", exc)
                missing = []
            checked_topics = time.monotonic()
            # the ingest topic is created first and by serve only: missing means the broker lost it
            if self.settings.topics.ingest in missing and "serve" in alive and self._serve_settled():
                self.broker_lost(f"{len(missing)} topics are gone")
                return checked_topics
        for name in self.names:
            if name not in alive:
                self.start(name, "it exited")
        return checked_topics

    def _serve_settled(self) -> bool:
        """The serve process has had time to create the topics since it (re)started."""
        started = self.restarts.last.get("serve", 0.0)
        return time.monotonic() - started > 20.0

    def run(self) -> None:
        log.info("supervising %s%s", ", ".join(self.names), " and the broker" if self.owns_broker else "")
        checked = time.monotonic()
        while not self.stop:
            try:
                checked = self.tick(checked)
            except Exception as exc:  # the supervisor must outlive what it supervises
                log.error("supervisor tick failed: %r", exc)
            time.sleep(TICK_S)
        log.info("supervisor stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    supervisor = Supervisor(Settings(), args.processes)

    def stop(*_: object) -> None:
        supervisor.stop = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    supervisor.run()


if __name__ == "__main__":
    main()
