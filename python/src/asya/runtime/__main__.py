"""``python -m asya.runtime``: start the runtime from environment variables."""

import sys

from asya.runtime.server import main

sys.exit(main())
