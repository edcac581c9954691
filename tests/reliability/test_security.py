"""Security properties that do not need a running stack: secrets never reach logs or reprs, no shell is
ever invoked, and the ingest URI policy (schemes, roots, traversal)."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from reelscope.infra.core.ingest import UriRejected, resolve_uri
from reelscope.infra.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ["producers", "stream_processors", "analyzers", "schemas", "sinks", "infra"]


def test_secrets_stay_out_of_reprs_dumps_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("REELSCOPE_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("REELSCOPE_KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("REELSCOPE_KAFKA__SASL_PASSWORD", "kafka-s3cret-value")
    monkeypatch.setenv("REELSCOPE_CLICKHOUSE__PASSWORD", "ch-s3cret-value")
    monkeypatch.setenv("REELSCOPE_API_TOKEN", "api-s3cret-value")
    settings = Settings()
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("reelscope.test").info("settings: %s %r", settings, settings)
    shown = repr(settings) + str(settings) + settings.model_dump_json() + caplog.text
    for secret in ("kafka-s3cret-value", "ch-s3cret-value", "api-s3cret-value"):
        assert secret not in shown
    # ... while the clients still get the real value
    assert settings.kafka.client_kwargs()["sasl_plain_password"] == "kafka-s3cret-value"


def test_no_shell_is_ever_invoked() -> None:
    """No subprocess call with shell=True, and no os.system / os.popen, anywhere in the product."""
    offenders = []
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call):
                    continue
                name = ast.unparse(node.func)
                if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"):
                    offenders.append(f"{path}:{node.lineno} {name}")
                for kw in node.keywords:
                    if kw.arg == "shell" and not (
                        isinstance(kw.value, ast.Constant) and kw.value.value is False
                    ):
                        offenders.append(f"{path}:{node.lineno} shell=")
    assert not offenders


@pytest.mark.parametrize(
    ("uri", "error"),
    [
        ("file:///etc/shadow", "outside the allowed roots"),
        ("{root}/../../etc/passwd", "outside the allowed roots"),
        ("{root}/link-out", "outside the allowed roots"),
        ("http://169.254.169.254/latest/meta-data/", "scheme 'http' is not allowed"),
        ("ftp://10.0.0.1/video.mp4", "scheme 'ftp' is not allowed"),
        ("{root}", "not a regular file"),
    ],
)
def test_ingest_uri_policy(tmp_path: Path, uri: str, error: str) -> None:
    (tmp_path / "link-out").symlink_to("/etc/hostname")
    settings = Settings(producer={"allowed_roots": [str(tmp_path)]})
    with pytest.raises(UriRejected, match=error):
        resolve_uri(uri.format(root=tmp_path), settings)
