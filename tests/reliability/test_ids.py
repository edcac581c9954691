"""Video ids are checked at every edge: the ingest schema, the CLI and the ids made from file names."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError
from reelscope.infra.core.ingest import make_request, request_for_path
from reelscope.schemas.events import IngestRequest, SchemaError, decode, encode

BAD = ["a" * 129, "a/b", "../x", ".hidden", "-flag", "sp ace", "é", "a?b=c"]


@pytest.mark.parametrize("bad", BAD)
def test_the_ingest_schema_refuses_unsafe_ids(bad: str) -> None:
    with pytest.raises(ValidationError):
        make_request("file:///x.mp4", video_id=bad)


def test_a_forged_ingest_request_with_an_unsafe_id_is_not_decoded() -> None:
    wire = encode(make_request("file:///x.mp4", video_id="a" * 40))
    assert decode(wire, expect=IngestRequest).video_id == "a" * 40
    with pytest.raises(SchemaError, match="video_id"):
        decode(wire.replace(b"a" * 40, b"a/" * 20), expect=IngestRequest)


def test_ids_made_from_any_file_name_are_valid() -> None:
    for name in (
        "/tmp/Été vidéo #1.mp4",
        "/tmp/日本.mp4",
        "/tmp/.mp4",
        "/tmp/a%2Fb.mp4",
        "/tmp/" + "x" * 300 + ".mp4",
    ):
        request = request_for_path(name)
        assert IngestRequest.model_validate(request.model_dump()).video_id == request.video_id


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["status", "a/b"], "a video id is 1 to 128"),
        (["results", "x" * 129], "a video id is 1 to 128"),
        (["push", "x.mp4", "--metadata", "[1]"], "must be a JSON object"),
        (["push", "x.mp4", "--metadata", '{"a": "' + "x" * 70_000 + '"}'], "more than 65536 bytes"),
    ],
)
def test_the_cli_refuses_bad_ids_and_metadata_before_sending(args: list[str], error: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "reelscope", *args], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2 and error in run.stderr
