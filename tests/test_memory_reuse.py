"""``import course_utils`` keeps freed memory for reuse (glibc), and a user's own malloc setting wins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_utils import _memory

ROOT = Path(__file__).resolve().parents[1]

# Ten 10 MB blocks allocated, written and freed, five times over, like a training step's
# activations; prints the page faults of the last four rounds. With glibc's defaults the freed
# 100 MB exceed its trim threshold (at most 64 MB) and go back to the kernel each round.
ROUNDS = """
import resource
import course_utils, torch

def round_():
    blocks = [torch.ones(10 * 1024 * 1024, dtype=torch.uint8) for _ in range(10)]
    del blocks

round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    round_()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(**env: str) -> int:
    # Only what the call names: malloc settings this process inherited (or an earlier test left)
    # would be "the user's choice" and keep the library out.
    chosen = {*_memory.USER_SETTINGS, "GLIBC_TUNABLES", "LD_PRELOAD"}
    environment = {k: v for k, v in os.environ.items() if k not in chosen}
    done = subprocess.run(
        [sys.executable, "-c", ROUNDS],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_the_library_keeps_freed_memory_for_the_next_round_and_the_users_choice_wins():
    pages = 4 * 10 * 10 * 1024 * 1024 // 4096  # four rounds of fresh pages, were they all given back
    assert page_faults() < pages // 20
    # The user's own threshold (every block of 64 KiB or more mapped on its own) is left as it is.
    assert page_faults(MALLOC_MMAP_THRESHOLD_="65536") > pages // 2
