"""The CLI answers a user's mistake in one line on stderr with a non-zero exit, never a traceback; every
option says what it is for; `--version`; plain progress lines when stdout is not a terminal.

The mistakes run in-process through `main` (a traceback would be an exception escaping it), and a few
through `python -m reelscope` to prove the real entry point's exit status and stderr. No stack is started:
the broker and API addresses are free ports nothing listens on, the state dir is empty.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from reelscope.analyzers.registry import all_analyzers, groups
from reelscope.infra.broker import free_port
from reelscope.infra.cli import main, parser
from reelscope.infra.cli_progress import Lines
from reelscope.infra.client import NothingStored
from reelscope.infra.core.ingest import UriRejected
from reelscope.infra.core.settings import get_settings
from reelscope.infra.core.topics import FINALIZE

from reelscope import __version__


@pytest.fixture(autouse=True)
def fresh_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An empty state dir, and broker and API addresses where nothing listens."""
    env = {
        "REELSCOPE_STATE_DIR": str(tmp_path / "state"),
        "REELSCOPE_API_PORT": str(free_port()),
        "REELSCOPE_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("REELSCOPE_DEBUG", raising=False)
    monkeypatch.delenv("REELSCOPE_ANALYZERS", raising=False)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def answer(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit status and stderr of one command run in-process."""
    try:
        rc = main(argv)
    except SystemExit as exit_:
        rc = exit_.code if isinstance(exit_.code, int) else 1
    return rc, capsys.readouterr().err


def all_groups() -> list[str]:
    return [*groups(list(all_analyzers())), FINALIZE]


def actions(p: argparse.ArgumentParser, path: str = "reelscope") -> Iterator[tuple[str, argparse.Action]]:
    """Every option and argument of the command tree, with the command it belongs to."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from actions(child, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_option_and_argument_says_what_it_is_for() -> None:
    tree = list(actions(parser()))
    missing = [
        f"{cmd} {a.option_strings or a.dest}" for cmd, a in tree if not a.help or a.help == "==SUPPRESS=="
    ]
    assert not missing, missing
    named = {(cmd, opt) for cmd, a in tree for opt in a.option_strings}
    for wanted in [
        ("reelscope analyze", "--timeout"),
        ("reelscope push", "--metadata"),
        ("reelscope push", "--hotwords"),
        ("reelscope bench", "--duration"),
        ("reelscope bench", "--out"),
        ("reelscope", "--version"),
    ]:
        assert wanted in named, wanted
    group = next(a for cmd, a in tree if cmd == "reelscope process" and "--group" in a.option_strings)
    assert group.help and all(name in group.help for name in all_groups()), group.help


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"reelscope {__version__}"


@pytest.fixture
def video(tmp_path: Path) -> str:
    """A file that exists (nothing reads it: each case stops before its content matters)."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\0" * 16)
    return str(path)


def expect_one_line(rc: int, err: str, *fragments: str) -> None:
    assert rc != 0, err
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_status_and_results_on_a_fresh_state_dir(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("status", "results"):
        expect_one_line(*answer([command, "abc"], capsys), "holds no results yet", "reelscope up")


def test_an_unknown_group_lists_the_groups(capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = answer(["process", "--group", "nope"], capsys)
    expect_one_line(rc, err, "unknown group 'nope'", *all_groups())
    rc, err = answer(["process", "--group", "visoin"], capsys)
    expect_one_line(rc, err, "did you mean 'vision'?")


def test_a_group_with_no_enabled_analyzer_names_the_groups_that_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELSCOPE_ANALYZERS", '["loudness"]')
    rc, err = answer(["process", "--group", "vision"], capsys)
    expect_one_line(
        rc, err, "no enabled analyzer belongs to group 'vision'", "groups that run here: audio, finalize"
    )


def test_metadata_that_is_not_json_says_where(capsys: pytest.CaptureFixture[str], video: str) -> None:
    rc, err = answer(["push", "--metadata", "{bad", video], capsys)
    expect_one_line(rc, err, "not valid JSON", "line 1 column 2")
    rc, err = answer(["analyze", "--metadata", "[1]", video], capsys)
    expect_one_line(rc, err, "must be a JSON object")


def test_a_misspelled_analyzer_gets_the_closest_name(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, fresh_env: dict[str, str]
) -> None:
    monkeypatch.setenv("REELSCOPE_ANALYZERS", '["auto", "objetcs"]')
    rc, err = answer(["up"], capsys)
    expect_one_line(rc, err, "unknown analyzers ['objetcs']", "did you mean 'objects'?")
    assert not (Path(fresh_env["REELSCOPE_STATE_DIR"]) / "run").exists(), "up started something"
    monkeypatch.setenv("REELSCOPE_ANALYZERS", "objects")  # not JSON: pydantic-settings cannot read it
    get_settings.cache_clear()
    expect_one_line(*answer(["up"], capsys), "REELSCOPE_ANALYZERS='[\"auto\"]'")


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["push", "nope.mp4"], ["file not found", "nope.mp4"]),
        (["push", "https://example.com/v.mp4"], ["URI scheme 'https' is not allowed"]),
        (["analyze", "nope.mp4"], ["file not found"]),
        (["analyze"], ["nothing to analyze"]),
        (["bench", "--clip", "nope.mp4"], ["file not found"]),
        (["bench", "--duration", "-1"], ["--duration: must be more than 0"]),
        (["up", "--processes", "two"], ["'two' is not a whole number"]),
        (["analyze", "--timeout", "soon", "x.mp4"], ["'soon' is not a number"]),
        (["status", ".bad"], ["a video id is"]),
        (["eval", "trasncript"], ["unknown aspect 'trasncript'; did you mean 'transcript'?"]),
        (["analyse", "x.mp4"], ["did you mean 'analyze'?"]),
        (["models", "pull"], ["name what to pull"]),
    ],
)
def test_user_mistakes_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragments: list[str]
) -> None:
    expect_one_line(*answer(argv, capsys), *fragments)


def test_an_output_that_cannot_be_written_is_said_before_the_work(
    capsys: pytest.CaptureFixture[str], video: str
) -> None:
    for argv in (["eval", "cuts", "--out"], ["bench", "--out"], ["analyze", video, "--json"]):
        rc, err = answer([*argv, f"{video}/details.json"], capsys)
        expect_one_line(rc, err, "is a file, not a folder")


def test_no_broker_is_said_at_once(
    capsys: pytest.CaptureFixture[str], video: str, fresh_env: dict[str, str]
) -> None:
    address = fresh_env["REELSCOPE_KAFKA__BOOTSTRAP_SERVERS"]
    for argv in (["push", video], ["push", "--wait", video]):
        expect_one_line(*answer(argv, capsys), f"no broker at {address}; run `reelscope up`")


def test_a_stack_that_cannot_start_is_one_line_pointing_at_the_logs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, fresh_env: dict[str, str]
) -> None:
    """A remote broker that does not answer (TEST-NET-1: nothing is ever there): `up` starts nothing."""
    monkeypatch.setenv("REELSCOPE_KAFKA__BOOTSTRAP_SERVERS", "192.0.2.1:9092")
    rc, err = answer(["up"], capsys)
    expect_one_line(rc, err, "the stack did not start: broker 192.0.2.1:9092 is unreachable", "logs in")
    assert not list((Path(fresh_env["REELSCOPE_STATE_DIR"]) / "run").glob("*.pid"))


def test_a_malformed_setting_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELSCOPE_API_PORT", "eighty")
    expect_one_line(*answer(["status", "abc"], capsys), "REELSCOPE_API_PORT='eighty'")


def test_debug_shows_the_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UriRejected, match="file not found"):
        main(["--debug", "push", "nope.mp4"])
    monkeypatch.setenv("REELSCOPE_DEBUG", "1")
    with pytest.raises(NothingStored, match="holds no results yet"):
        main(["status", "abc"])


def test_the_installed_entry_point_exits_non_zero_with_one_line(fresh_env: dict[str, str]) -> None:
    """`python -m reelscope` (what `up` spawns) passes main's status on; REELSCOPE_DEBUG=1 shows the trace."""
    env = {**os.environ, **fresh_env}
    command = [sys.executable, "-m", "reelscope", "status", "abc"]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    expect_one_line(run.returncode, run.stderr, "holds no results yet")
    debug = subprocess.run(
        command, capture_output=True, text=True, env={**env, "REELSCOPE_DEBUG": "1"}, timeout=120
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr, debug.stderr[-2000:]


def test_plain_progress_is_a_line_per_status_and_tenth() -> None:
    out = io.StringIO()
    lines = Lines(out)
    lines.stage("starting the local stack")
    for status, received in [("processing", 0), ("processing", 3), ("processing", 10), ("processing", 55)]:
        lines.status("v1", status)
        lines.analyzer("v1", "objects", received, 100)
    lines.analyzer("v1", "objects", 100, 100)
    lines.analyzer("v1", "loudness", 1, None)  # the count is not known yet: one line, no division
    lines.analyzer("v1", "loudness", 2, None)
    lines.analyzer("v1", "loudness", 7, 7)
    lines.status("v1", "complete")
    assert out.getvalue().splitlines() == [
        "starting the local stack",
        "v1: processing",
        "v1 objects: 0/100 (0%)",
        "v1 objects: 10/100 (10%)",
        "v1 objects: 55/100 (55%)",
        "v1 objects: 100/100 (100%)",
        "v1 loudness: 1 so far",
        "v1 loudness: 7/7 (100%)",
        "v1: complete",
    ]


def test_valid_metadata_reaches_the_command_as_its_object() -> None:
    args = parser().parse_args(["push", "--metadata", json.dumps({"a": [1, 2]}), "x.mp4"])
    assert args.metadata == {"a": [1, 2]} and args.timeout == 900.0 and not args.wait
