"""``python -m devtools.simulator``: the simulator without Django (the same options as the command)."""

import sys

from .cli import main

sys.exit(main())
