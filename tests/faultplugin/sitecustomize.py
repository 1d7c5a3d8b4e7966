"""Test-only plugin: a Python process started with this folder on ``PYTHONPATH`` and
``VIDSEARCH_FAULT_INJECT`` set injects those decoder faults (see ``tests/faults.py``)."""

import os
import sys

if os.environ.get("VIDSEARCH_FAULT_INJECT"):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import faults

    faults.install(faults.FaultPlan.from_env())
