"""How the gateways report an application's failure: one log line and a traceback on
stderr, in the runtime's own "pyparallel: ..." form, then the server goes on."""
from __future__ import annotations

import sys
import traceback


def log_app_error(context: str, exc: BaseException) -> None:
    """Writes 'pyparallel: <context>' and the traceback of ``exc`` to stderr."""
    text = "".join(traceback.format_exception(exc))
    sys.stderr.write(f"pyparallel: {context}\n{text}")
    sys.stderr.flush()
