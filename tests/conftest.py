"""Fixtures for tests that use real parts: a real Tansu broker process, real chdb, real stack processes."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from reelscope.analyzers.ocr_text import OcrTextAnalyzer
from reelscope.infra.broker import free_port, start_broker
from reelscope.infra.core.settings import Settings

from tests.media import SHARED_MEDIA


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka-protocol broker (Tansu, memory storage) for the whole test session."""
    port = free_port()
    proc = start_broker(port, tmp_path_factory.mktemp("broker") / "broker.log")
    yield f"127.0.0.1:{port}"
    proc.kill()
    proc.wait()


def stack_env(broker: str, state_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a stack isolated by its own topic prefix, state dir (chdb path) and API port."""
    return {
        "REELSCOPE_KAFKA__BOOTSTRAP_SERVERS": broker,
        "REELSCOPE_TOPICS__PREFIX": f"t{uuid.uuid4().hex[:8]}.",
        "REELSCOPE_TOPICS__PARTITIONS": "2",
        "REELSCOPE_STATE_DIR": str(state_dir),
        "REELSCOPE_API_PORT": str(free_port()),
        "REELSCOPE_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "REELSCOPE_AGGREGATOR__COMPLETION_TIMEOUT_S": "60",
        "REELSCOPE_METRICS_BASE_PORT": "0",  # stacks of tests running side by side: any free metrics port
        "REELSCOPE_BATCH__MAX_STRIDE": "1",  # exact results on a busy machine: no load shedding (it is tested apart)
        **extra,
    }


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch, broker: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Build Settings from an isolated environment (subprocesses of the stack inherit it)."""

    def make(**extra: str) -> Settings:
        for key, value in stack_env(broker, tmp_path / "state", **extra).items():
            monkeypatch.setenv(key, value)
        return Settings()

    return make


@contextlib.contextmanager
def stack_running(env: dict[str, str]) -> Iterator[Settings]:
    """The whole local stack (serve + one process per group) as real processes, configured by `env`."""
    from reelscope.infra.stack import down, up

    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings()
        try:
            up(settings, timeout_s=120)
            yield settings
        finally:
            down(settings)


@pytest.fixture(scope="module")
def running_stack(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The stack with the default analyzers, shared by a module."""
    with stack_running(stack_env(broker, tmp_path_factory.mktemp("stack"))) as settings:
        yield settings


@pytest.fixture
def shared_media() -> Path:
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"shared test media not found at {SHARED_MEDIA}")
    return SHARED_MEDIA


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def loaded_ocr() -> OcrTextAnalyzer:
    """An OCR analyzer with RapidOCR's packaged models loaded; skips where RapidOCR is not installed."""
    pytest.importorskip("rapidocr_onnxruntime")
    analyzer = OcrTextAnalyzer()
    analyzer.load()
    return analyzer
