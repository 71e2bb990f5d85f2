"""The room-operation scenarios of test_synapse_room_ops.py, over Stratus→Stratus2 and
Stratus2→Stratus (the pairs come from this file's name: conftest.PAIRS)."""

from test_synapse_room_ops import *  # noqa: F401,F403
