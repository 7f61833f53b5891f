"""The one-time note that ``bitnet convert`` would make a slow-loading checkpoint fast."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from .backends.cpu_format import LAYOUT_KEY

if TYPE_CHECKING:
    from .checkpoints.hf import Checkpoint

_logger = logging.getLogger("bitnet_backend")
_lock = threading.Lock()
_hinted: set[str] = set()


def suggest_convert(checkpoint: Checkpoint) -> None:
    """Say once per process and checkpoint that converting it makes later loads fast.

    Logged as a warning of the ``bitnet_backend`` logger: with no logging set up, Python
    prints it to stderr; an application's logging configuration can route or silence it.
    """
    if LAYOUT_KEY in checkpoint.config.extra:
        return
    path = str(checkpoint.path)
    with _lock:
        if path in _hinted:
            return
        _hinted.add(path)
    _logger.warning(
        "bitnet-backend: %s is not converted, so every load repacks its weights (seconds); "
        "`bitnet convert %s OUT` writes them in the kernel layout once and loading OUT "
        "takes well under a second",
        path,
        path,
    )
