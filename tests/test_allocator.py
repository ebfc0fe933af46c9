"""The programs' allocator setting: glibc agrees to it, and importing minifcn alone never applies it."""

import platform
import subprocess
import sys

import pytest

# Whether a freed 64 MiB block stays mapped in the process: with glibc's defaults it goes back to
# the kernel (RSS drops); with keep_freed_memory() it is kept for reuse (RSS stays).
PROBE = """
import sys
import numpy as np
def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
if sys.argv[1] == "keep":
    from minifcn.allocator import keep_freed_memory
    assert keep_freed_memory()
else:
    import minifcn.train  # importing the programs' modules must not change the allocator
block = np.ones(64 * 2**20 // 8)
before = rss_mib()
del block
print(before - rss_mib())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_freed_memory_is_kept_only_when_asked():
    def released(mode):
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return float(out.stdout)

    assert released("import") > 48, "with glibc's defaults a freed 64 MiB array goes back to the kernel"
    assert released("keep") < 16, "after keep_freed_memory() it stays in the process for reuse"

