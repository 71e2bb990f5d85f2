"""The query scenarios of test_synapse_queries.py, over Stratus→Stratus2 and
Stratus2→Stratus (the pairs come from this file's name: conftest.PAIRS)."""

from test_synapse_queries import *  # noqa: F401,F403
