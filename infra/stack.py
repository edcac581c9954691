"""`reelscope up` / `down`: the local stack as background processes with pid files under the state dir.

up: the embedded broker (unless one answers at the configured address), topics, the serve process (ingest
worker + aggregator + API, owner of the embedded ClickHouse) and one process per processor group, the
finalize group included. Each
process logs to state_dir/logs. With `supervise`, a supervisor process (infra/supervisor.py) then restarts
whatever dies, the broker included. down: the supervisor first, then SIGTERM to each (graceful: finish the
batch, commit), then SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reelscope.analyzers.registry import groups
from reelscope.infra.broker import free_port, port_open, speaks_kafka, start_broker
from reelscope.infra.core.metrics import group_metrics_port
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.topics import FINALIZE


@dataclass
class StackInfo:
    started: list[str]
    api_url: str


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "REELSCOPE_TORCH_THREADS")
"""How a processor's thread budget reaches OpenMP/BLAS (onnxruntime and CTranslate2 follow OMP_NUM_THREADS)
and torch (set in `reelscope process`)."""


def run_dir(settings: Settings) -> Path:
    path = settings.state_dir / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_dir(settings: Settings) -> Path:
    path = settings.state_dir / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def api_url(settings: Settings) -> str:
    return f"http://{settings.api_host}:{settings.api_port}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie child of this process counts as dead
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    except ChildProcessError:
        pass
    try:  # and so does a zombie of another parent (a broker `up` started inside a process that lives on)
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def running(settings: Settings) -> dict[str, int]:
    """Name -> pid of stack processes still alive."""
    out = {}
    for pid_file in run_dir(settings).glob("*.pid"):
        pid = int(pid_file.read_text().strip() or 0)
        if pid and _alive(pid):
            out[pid_file.stem] = pid
        else:
            pid_file.unlink(missing_ok=True)
    return out


def process_groups(settings: Settings) -> list[str]:
    """The groups `up` starts as processes: every analyzer group, then the finalize group."""
    return [*groups(settings.analyzers, settings), FINALIZE]


def spawn(settings: Settings, name: str, args: list[str], module: str = "reelscope") -> int:
    """Start `python -m MODULE ARGS` in its own session, logging to state_dir/logs/NAME.log.

    A processor group's process (named group-GROUP-INDEX by `up` and the supervisor) gets its own stable
    Prometheus port (metrics.group_metrics_port), written to state_dir/run/NAME.metrics."""
    env = os.environ.copy()
    if args[0] == "process":
        group = args[args.index("--group") + 1]
        threads = settings.threads_per_process or max(
            1, (os.cpu_count() or 1) // len(groups(settings.analyzers, settings))
        )
        for variable in THREAD_VARIABLES:
            env.setdefault(variable, str(threads))
        if group in settings.group_devices:
            env["CUDA_VISIBLE_DEVICES"] = settings.group_devices[group]
        index = int(suffix) if (suffix := name.rpartition("-")[2]).isdigit() else 0
        port = group_metrics_port(settings, group, index) or free_port()
        env["REELSCOPE_METRICS_PORT"] = str(port)
        (run_dir(settings) / f"{name}.metrics").write_text(f"127.0.0.1:{port}")
    with (log_dir(settings) / f"{name}.log").open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    (run_dir(settings) / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def http_json(url: str, timeout: float = 2.0, token: str | None = None) -> dict:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def broker_address(settings: Settings) -> tuple[str, int]:
    first = settings.kafka.bootstrap_servers.split(",")[0]
    host, _, port = first.rpartition(":")
    return host or "127.0.0.1", int(port)


def say_on_stderr(line: str) -> None:
    """`up`'s progress: one flushed line each, terminal or not."""
    print(f"up: {line}", file=sys.stderr, flush=True)


def up(
    settings: Settings,
    processes_per_group: int = 1,
    timeout_s: float = 180.0,
    supervise: bool = False,
    say: Callable[[str], None] = say_on_stderr,
) -> StackInfo:
    """Start whatever part of the local stack is not running; wait until it is ready. If that fails, stop
    what this call started (and only that) and raise."""
    started: list[str] = []
    try:
        _start(settings, processes_per_group, started, say)
        wait_ready(settings, timeout_s, say)
        if supervise and "supervisor" not in running(settings):
            spawn(
                settings,
                "supervisor",
                ["--processes", str(processes_per_group)],
                "reelscope.infra.supervisor",
            )
            started.append("supervisor")
            say("supervisor started: it restarts whatever dies (logs/supervisor.log)")
    except BaseException:
        if started:
            say(f"stopping what this call started: {', '.join(started)}")
            stop_processes(settings, {n: p for n, p in running(settings).items() if n in started})
        raise
    say(f"ready at {api_url(settings)}")
    return StackInfo(started=started, api_url=api_url(settings))


def _start(
    settings: Settings, processes_per_group: int, started: list[str], say: Callable[[str], None]
) -> None:
    alive = running(settings)
    host, port = broker_address(settings)
    if not port_open(host, port):
        if host not in ("127.0.0.1", "localhost"):
            raise RuntimeError(f"broker {host}:{port} is unreachable and is not local; start it first")
        proc = start_broker(port, log_dir(settings) / "broker.log")
        (run_dir(settings) / "broker.pid").write_text(str(proc.pid))
        started.append("broker")
        say(f"broker started on {host}:{port} (memory storage)")
    elif not speaks_kafka(host, port):
        raise RuntimeError(
            f"{host}:{port} is held by a program that is not a Kafka broker (no answer to ApiVersions in 5 s); "
            "stop it or set REELSCOPE_KAFKA__BOOTSTRAP_SERVERS"
        )
    else:
        say(f"using the broker at {host}:{port}")
    if "serve" not in alive:
        if port_open(settings.api_host, settings.api_port):
            raise RuntimeError(
                f"port {settings.api_port} is taken by another program; set REELSCOPE_API_PORT to a free port"
            )
        spawn(settings, "serve", ["serve"])
        started.append("serve")
    for group in process_groups(settings):
        for i in range(processes_per_group):
            name = f"group-{group}-{i}"
            if name not in alive:
                spawn(settings, name, ["process", "--group", group, "--name", name])
                started.append(name)
    say(f"started {', '.join(n for n in started if n != 'broker') or 'nothing'}; waiting until ready")


def wait_ready(settings: Settings, timeout_s: float, say: Callable[[str], None] | None = None) -> None:
    """Until the API says ready and every group process has written its ready file."""
    deadline = time.monotonic() + timeout_s
    told = time.monotonic()
    token = settings.api_token.get_secret_value() if settings.api_token else None
    reason = ""
    while time.monotonic() < deadline:
        alive = running(settings)
        missing = [
            n for n in alive if n.startswith("group-") and not (run_dir(settings) / f"{n}.ready").exists()
        ]
        try:
            api_ready = http_json(f"{api_url(settings)}/health", token=token).get("ready", False)
        except urllib.error.HTTPError as exc:  # 503: not ready, and why
            api_ready = False
            with contextlib.suppress(ValueError):
                reason = json.loads(exc.read()).get("reason") or reason
        except OSError:
            api_ready = False
        if api_ready and not missing:
            return
        if "serve" not in alive:
            raise RuntimeError(f"the serve process exited:\n{_log_tail(settings, 'serve')}")
        if say is not None and time.monotonic() - told > 5.0:
            told = time.monotonic()
            waiting = ([] if api_ready else ["serve"]) + missing
            say(f"waiting for {', '.join(waiting)} ({time.monotonic() - deadline + timeout_s:.0f} s)")
        time.sleep(0.2)
    waiting = ([] if api_ready else ["serve"]) + missing
    tails = "\n".join(_log_tail(settings, name) for name in waiting)
    why = f" (serve: {reason})" if reason and not api_ready else ""
    raise TimeoutError(f"stack not ready after {timeout_s:.0f} s; waiting for {waiting}{why}:\n{tails}")


def _log_tail(settings: Settings, name: str, lines: int = 15) -> str:
    path = log_dir(settings) / f"{name}.log"
    text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(no log)"]
    return f"--- {path}\n" + "\n".join(text)


def down(settings: Settings, timeout_s: float = 20.0) -> list[str]:
    """Stop every stack process: the supervisor first (so it restarts nothing), then the rest."""
    return stop_processes(settings, running(settings), timeout_s)


def stop_processes(settings: Settings, alive: dict[str, int], grace_s: float = 20.0) -> list[str]:
    """SIGTERM first (graceful), SIGKILL after grace_s; the supervisor first, the broker last."""
    first = ["supervisor"] if "supervisor" in alive else []
    rest = [n for n in alive if n not in ("supervisor", "broker")]
    last = ["broker"] if "broker" in alive else []
    stopped = []
    for batch in (first, rest, last):
        for name in batch:
            _signal(alive[name], signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for name in batch:
            while _alive(alive[name]) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(alive[name]):
                _signal(alive[name], signal.SIGKILL)
            (run_dir(settings) / f"{name}.pid").unlink(missing_ok=True)
            for suffix in ("ready", "metrics"):
                (run_dir(settings) / f"{name}.{suffix}").unlink(missing_ok=True)
            stopped.append(name)
    return stopped


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
