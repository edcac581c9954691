"""Transcription runs alone in the `speech` group (issue 18): its slow, stateful Whisper batches no longer
share the audio group's, so the audio group is stateless and every deployment starts a speech process."""

from __future__ import annotations

from pathlib import Path

import pytest
from reelscope.analyzers.registry import all_analyzers, groups
from reelscope.infra.core.metrics import every_group
from reelscope.infra.core.settings import Settings
from reelscope.infra.stack import process_groups
from reelscope.infra.supervisor import Supervisor
from reelscope.producers.backpressure import LagWatcher


def test_the_default_analyzers_put_transcription_alone_in_the_stateful_speech_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REELSCOPE_ANALYZERS", raising=False)
    settings = Settings()
    by_group = {
        g: sorted(c.name for c in classes) for g, classes in groups(settings.analyzers, settings).items()
    }
    if "transcription" not in all_analyzers() or not any("transcription" in n for n in by_group.values()):
        pytest.skip("transcription is not enabled here (faster-whisper or its packaged model missing)")
    assert by_group["speech"] == ["transcription"]
    assert "loudness" in by_group["audio"]
    stateful = {
        g for g, classes in groups(settings.analyzers, settings).items() if any(c.stateful for c in classes)
    }
    assert stateful == {"speech"}  # the audio group commits per item
    assert LagWatcher(settings).progress == {"speech"}  # only speech's lag is read from its progress offsets


def test_up_and_the_supervisor_start_a_speech_process(tmp_path: Path) -> None:
    settings = Settings(analyzers=["scene", "loudness", "transcription"], state_dir=tmp_path)
    started = process_groups(settings)  # what `reelscope up` starts, one process each
    assert sorted(started) == ["audio", "finalize", "light", "speech"] and started[-1] == "finalize"
    assert {"group-audio-0", "group-speech-0"} <= set(Supervisor(settings, 1).names)
    assert "speech" in every_group()  # the deployments and Prometheus targets list it (tests/test_deploy.py)
