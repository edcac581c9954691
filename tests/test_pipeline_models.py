"""Model-backed analyzers inside the real pipeline, with tiny random models loaded through the product's own
loading code: objects, pose and logos (ultralytics checkpoints) in the vision group, captions (a tiny random
Qwen2-VL) in the describe group. Their output is noise by construction; what is proven is the wiring (load
once per process, batch, publish, join, reconstruct) and that the provenance says `random-test` all the way
to the reconstruction."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from reelscope.infra.core.ingest import request_for_path
from reelscope.infra.stack import down, up
from reelscope.sinks.store import Store

from tests.media import cut_clip
from tests.test_pipeline import _push, wait_done

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("ultralytics")
    pytest.importorskip("transformers")
    from reelscope.analyzers.common.yolo import ultralytics_offline
    from reelscope.infra.bench.random_vlm import build_random_vlm

    folder = tmp_path_factory.mktemp("models")
    ultralytics_offline()
    from ultralytics import YOLO

    YOLO("yolo11n.yaml").save(folder / "random-detect.pt")
    YOLO("yolo11n-pose.yaml").save(folder / "random-pose.pt")
    build_random_vlm("qwen2_vl", "tiny", folder / "tiny-qwen2-vl")
    from tests.test_audio_classes import tiny_ast_model, tiny_emotion_model

    return {
        "detect": folder / "random-detect.pt",
        "pose": folder / "random-pose.pt",
        "vlm": folder / "tiny-qwen2-vl",
        "emotion": tiny_emotion_model(folder / "tiny-emotion"),
        "ast": tiny_ast_model(folder / "tiny-ast"),
    }


def test_random_models_run_in_their_groups_and_say_so(
    env_settings: Any, tmp_path: Path, model_paths: dict[str, Path]
) -> None:
    settings = env_settings(
        REELSCOPE_ANALYZERS='["scene", "color", "objects", "pose", "logos", "captions", "speech_emotion", "sound_events"]',
        REELSCOPE_SPEECH_EMOTION__MODEL=str(model_paths["emotion"]),
        REELSCOPE_SOUND_EVENTS__MODEL=str(model_paths["ast"]),
        REELSCOPE_OBJECTS__MODEL=str(model_paths["detect"]),
        REELSCOPE_OBJECTS__CONF="0.001",
        REELSCOPE_POSE__MODEL=str(model_paths["pose"]),
        REELSCOPE_LOGOS__MODEL=str(model_paths["detect"]),
        REELSCOPE_CAPTIONS__MODEL=str(model_paths["vlm"]),
        REELSCOPE_CAPTIONS__MAX_NEW_TOKENS="6",
    )
    clips = [cut_clip(tmp_path / f"m{i}.mp4", cut_frame=25, frames=50, fps=25) for i in range(2)]
    requests = [request_for_path(str(c), video_id=f"models-{i}") for i, c in enumerate(clips)]
    up(settings, timeout_s=180)
    try:
        asyncio.run(_push(settings, requests))
        docs = [wait_done(settings, r.video_id, timeout_s=240) for r in requests]
    finally:
        down(settings)
    for doc in docs:
        assert doc["status"] == "complete", doc["analyzers"]
        for name in ("objects", "pose", "logos", "captions", "speech_emotion", "sound_events"):
            assert doc["analyzers"][name]["provenance"] == "random-test", (name, doc["analyzers"][name])
        assert doc["analyzers"]["objects"]["received"] == 6  # 3 fps over 2 s
        assert [s["start_s"] for s in doc["shots"]] == [0.0, 1.0]  # the cut at frame 25
        for shot in doc["shots"]:
            assert shot["caption"]["provenance"] == "random-test" and shot["caption"]["text"]
        assert doc["description"]["provenance"] == "random-test" and doc["description"]["description"]
        assert isinstance(doc["tracks"], list)
    store = Store(settings)
    try:
        rows = store.scalar(
            f"SELECT count() FROM {store.db}.shots FINAL WHERE caption_provenance = 'random-test'"
        )
        detections = store.scalar(f"SELECT count() FROM {store.db}.detections")
    finally:
        store.close()
    assert rows == 4  # two shots in each of the two videos, captioned in shared batches
    payload_detections = sum(
        len(json.loads(r["payload"]).get("detections", [])) for r in _objects_rows(settings, "models-0")
    ) + sum(len(json.loads(r["payload"]).get("detections", [])) for r in _objects_rows(settings, "models-1"))
    assert detections == payload_detections  # the materialized view unpacked every stored detection


def _objects_rows(settings: Any, video_id: str) -> list[dict[str, Any]]:
    store = Store(settings)
    try:
        return [r for r in store.results(video_id) if r["analyzer"] == "objects"]
    finally:
        store.close()
