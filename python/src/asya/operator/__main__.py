"""``python -m asya.operator``: run the AsyncActor operator; ``... remove-actors``: the uninstall hook."""

import sys

from asya.operator import main

if sys.argv[1:2] == ["remove-actors"]:
    from asya.operator import uninstall

    sys.exit(uninstall.main(sys.argv[2:]))
sys.exit(main())
