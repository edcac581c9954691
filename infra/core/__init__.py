"""The foundation every service imports: settings, metrics, the Kafka plumbing, ingest requests.

It sits below producers, stream_processors and sinks and above analyzers and schemas (docs/architecture.md).
"""
