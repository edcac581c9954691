"""One line on stderr and a non-zero exit, never a traceback, for the mistakes a user can fix.

The parser answers a bad argument in one line (not argparse's usage block); `handled` turns the errors in
USER_ERRORS into one line. Anything else is a bug and keeps its traceback; `--debug` or REELSCOPE_DEBUG=1
shows the traceback behind a one-liner too.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
import urllib.error
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError
from pydantic_settings import SettingsError
from reelscope.analyzers.registry import UnknownAnalyzer
from reelscope.infra.broker import port_open
from reelscope.infra.client import NothingStored
from reelscope.infra.core.ingest import UriRejected
from reelscope.infra.core.settings import Settings, get_settings

DEBUG_VARIABLE = "REELSCOPE_DEBUG"
USAGE_EXIT = 2
"""The exit status of a user mistake, as argparse's own."""


class UserError(Exception):
    """A mistake the user can fix; its message is the whole answer."""


USER_ERRORS = (UserError, UnknownAnalyzer, UriRejected, NothingStored, urllib.error.URLError)
"""Errors that are about the user's input or setup, not bugs: answered in one line."""


def suggestion(word: str, choices: Iterable[str]) -> str:
    """'; did you mean X?' for the choice closest to a misspelled word, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown(kind: str, value: str, choices: Iterable[str]) -> str:
    """The one-line answer to a name that is not among `choices`: the closest one, then all of them."""
    names = sorted(choices)
    return f"unknown {kind} {value!r}{suggestion(value, names)} ({kind}s: {', '.join(names)})"


def one_of(kind: str, choices: Iterable[str]) -> Callable[[str], str]:
    """An argparse type that accepts one of `choices` and answers a miss with the closest and the list."""
    names = sorted(choices)

    def check(value: str) -> str:
        if value not in names:
            raise argparse.ArgumentTypeError(unknown(kind, value, names))
        return value

    return check


NUMBER_NAMES = {int: "whole number", float: "number"}


def positive(kind: type[float] | type[int]) -> Callable[[str], float | int]:
    """An argparse type for a number above zero (a timeout, a duration, a count of processes)."""

    def check(value: str) -> float | int:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a {NUMBER_NAMES[kind]}") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
        return number

    return check


def output_path(value: str) -> str:
    """An argparse type for a file the command writes at its end: said now when it cannot be written there
    (an ancestor that is a file, a folder without write permission), not after minutes of work."""
    path = Path(value).expanduser().absolute()
    if path.is_dir():
        return value  # analyze --json with several videos writes into it
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {value}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {value}: no write permission in {ancestor}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors in one line: the mistake and where to read more, not the usage block."""

    def error(self, message: str) -> NoReturn:
        if missed := re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message):
            message += suggestion(missed[1], re.findall(r"'([^']*)'", missed[2]))
        self.exit(USAGE_EXIT, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def load_settings() -> Settings:
    """The settings from the environment, a malformed REELSCOPE_* variable named in one line."""
    try:
        return get_settings()
    except ValidationError as exc:
        problems = [  # the value shown only when it is the variable's own text (a section's dict may hold secrets)
            f"REELSCOPE_{'__'.join(str(part) for part in e['loc']).upper()}"
            + (f"={e['input']!r}" if isinstance(e.get("input"), str) else "")
            + f": {e['msg']}"
            for e in exc.errors()
        ]
        raise UserError(f"invalid settings: {'; '.join(problems)}") from exc
    except SettingsError as exc:
        raise UserError(
            f"invalid settings: {exc} (list and mapping settings are JSON, e.g. REELSCOPE_ANALYZERS='[\"auto\"]')"
        ) from exc


def require_broker(settings: Settings) -> None:
    """Fail at once when nothing listens at the broker address, instead of retrying for minutes."""
    from reelscope.infra.stack import broker_address

    host, port = broker_address(settings)
    if not port_open(host, port):
        raise UserError(f"no broker at {host}:{port}; run `reelscope up`")


def require_api(settings: Settings) -> None:
    """Fail at once when the stack's API is not running (waiting for results needs it)."""
    if not port_open(settings.api_host, settings.api_port):
        raise UserError(f"no API at {settings.api_host}:{settings.api_port}; run `reelscope up`")


def describe(exc: BaseException) -> str:
    """A known error as one line."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"the API answered {exc.code} {exc.reason} for {exc.url}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot reach the API: {exc.reason}"
    return " ".join(str(exc).split())


def debugging(flag: bool) -> bool:
    return flag or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def handled(command: str, debug: bool, call: Callable[[], int]) -> int:
    """Run a command, answering a user mistake or an interrupt in one line (with --debug: re-raised)."""
    try:
        return call()
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"reelscope {command}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if debug:
            raise
        print(f"reelscope {command}: error: {describe(exc)}", file=sys.stderr)
        return USAGE_EXIT
