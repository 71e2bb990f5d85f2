"""The device-list scenario of test_synapse_devices.py, over Stratus→Stratus2 and
Stratus2→Stratus (the pairs come from this file's name: conftest.PAIRS)."""

from test_synapse_devices import *  # noqa: F401,F403
