"""``python -m testbed.synth DIR N [--seed S] [--churn C] [--truth PATH]``."""

from __future__ import annotations

from testbed.synth.write import main

raise SystemExit(main())
