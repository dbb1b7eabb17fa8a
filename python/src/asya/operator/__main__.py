"""``python -m asya.operator``: run the AsyncActor operator."""

import sys

from asya.operator import main

sys.exit(main())
