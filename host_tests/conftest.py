"""pytest set-up: the firmware package, the tools and the portable helpers import from the tree."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for p in (HERE, os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tools")):
    if p not in sys.path:
        sys.path.insert(0, p)


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: long-running hypothesis fuzzing (make fuzz)")
    config.addinivalue_line("markers", "slow: end-to-end tests on ptys or the unix port")
