"""``python -m bitnet_backend.cli``: the ``bitnet`` command."""

import sys

from . import console_main

sys.exit(console_main())
