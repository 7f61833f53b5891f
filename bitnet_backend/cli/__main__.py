"""``python -m bitnet_backend.cli``: the ``bitnet`` command."""

import sys

from . import main

sys.exit(main())
