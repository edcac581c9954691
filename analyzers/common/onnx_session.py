"""onnxruntime session options every analyzer wants on a shared CPU.

onnxruntime's intra-op threads spin-wait between operators by default: on two cores shared by four groups
that spinning was over half of the OCR analyzer's CPU (docs/benchmarks.md, OCR row). Sessions here sleep
instead, and stay within the process's thread budget.
"""

from __future__ import annotations

from typing import Any


def session_options(threads: int = 0) -> Any:
    """SessionOptions with non-spinning intra-op threads, `threads` of them when > 0 (else onnxruntime's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options
