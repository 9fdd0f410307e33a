"""Shared setup for the tools/ checks: tools/ on sys.path, one torch thread."""
import os
import sys

import pytest

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "tools")
sys.path.insert(0, TOOLS)


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    import torch
    torch.set_num_threads(1)
    yield
