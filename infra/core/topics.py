"""The topic catalog: every topic in one place, with the event kinds it carries, the consumer groups that
read it and the configs it is created with. Topic creation, the consumers and the lag figures all take
names and group ids from here."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from reelscope.analyzers.registry import groups
from reelscope.infra.core.settings import Settings
from reelscope.schemas import events as ev

PRODUCER_GROUP = "reelscope.producer"
AGGREGATOR_GROUP = "reelscope.aggregator"
FINALIZE = "finalize"
"""The worker group that builds finished videos' documents (sinks/finalizer.py), run like an analyzer group."""


def group_id(group: str) -> str:
    """Kafka consumer group id of a processor group (analyzer groups and the finalize group)."""
    return f"reelscope.group.{group}"


def progress_group_id(group: str) -> str:
    """Where a stateful processor group commits the offsets it has processed (its own commits wait for
    its streams to end): the producer's backpressure reads its lag from these (producers/backpressure.py)."""
    return f"{group_id(group)}.progress"


@dataclass(frozen=True)
class Topic:
    name: str
    kinds: tuple[str, ...]
    readers: tuple[str, ...]
    """Consumer group ids inside reelscope; output topics are read by downstream consumers only."""
    configs: dict[str, str] = field(default_factory=dict)
    """Broker configs the topic is created with (cleanup policy, retention)."""


def topic_configs(settings: Settings, name: str, compacted: bool = False) -> dict[str, str]:
    """Retention from the settings; a compacted topic keeps the latest event per key (the video id) and
    keeps a tombstone that long instead."""
    retention = str(settings.topics.retention_ms(name.removeprefix(settings.topics.prefix)))
    if compacted:
        return {"cleanup.policy": "compact", "delete.retention.ms": retention}
    return {"cleanup.policy": "delete", "retention.ms": retention}


def media_topics(settings: Settings, inputs: set[str]) -> list[str]:
    """The media topics a processor with analyzers of these inputs (frame, audio, shot) consumes."""
    out = [settings.topics.frames] if inputs & {"frame", "shot"} else []
    if "audio" in inputs:
        out.append(settings.topics.audio)
    if "shot" in inputs:
        out.append(settings.topics.shots)
    return out


def catalog(settings: Settings) -> list[Topic]:
    """Every reelscope topic with the analyzer groups enabled by `settings`."""
    t = settings.topics
    readers: dict[str, list[str]] = {}
    for name, classes in groups(settings.analyzers, settings).items():
        for topic in media_topics(settings, {c.input for c in classes}):
            readers.setdefault(topic, []).append(group_id(name))

    def of(topic: str) -> tuple[str, ...]:
        return tuple(readers.get(topic, ()))

    compacted = {t.reconstructions, *(t.part(p) for p in t.PARTS)}
    topics = [
        Topic(t.ingest, (ev.IngestRequest.KIND,), (PRODUCER_GROUP,)),
        Topic(t.frames, (ev.Frame.KIND,), of(t.frames)),
        Topic(t.audio, (ev.AudioChunk.KIND,), of(t.audio)),
        Topic(
            t.lifecycle,
            (ev.VideoStarted.KIND, ev.VideoFinished.KIND, ev.VideoFailed.KIND),
            (AGGREGATOR_GROUP,),
        ),
        Topic(t.shots, (ev.ShotsReady.KIND,), of(t.shots)),
        Topic(t.results, (ev.AnalyzerResult.KIND,), (AGGREGATOR_GROUP,)),
        Topic(t.finalize, (ev.VideoReady.KIND,), (group_id(FINALIZE),)),
        Topic(t.documents, (ev.VideoDocument.KIND,), (AGGREGATOR_GROUP,)),
        Topic(t.reconstructions, (ev.Reconstruction.KIND,), ()),
        *(Topic(t.part(p), (ev.VideoPart.KIND,), ()) for p in t.PARTS),
        Topic(t.dead_letter, (ev.DeadLetter.KIND,), ()),
        Topic(t.heartbeats, (ev.ProcessorHeartbeat.KIND,), (AGGREGATOR_GROUP,)),
    ]
    return [
        replace(topic, configs=topic_configs(settings, topic.name, topic.name in compacted))
        for topic in topics
    ]


def read_by(settings: Settings, group: str) -> list[str]:
    """Names of the topics a consumer group reads, in catalog order."""
    return [topic.name for topic in catalog(settings) if group in topic.readers]
