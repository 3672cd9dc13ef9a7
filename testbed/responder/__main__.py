"""``python -m testbed.responder CONFIG.json [--ready-file PATH]``."""

import sys

from testbed.responder.process import main

sys.exit(main())
