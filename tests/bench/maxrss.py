# SPDX-License-Identifier: MIT
"""Runs a command, passes its output through, and prints the peak resident
memory it reached (the kernel's ru_maxrss of the finished child)."""
import resource
import subprocess
import sys

status = subprocess.call(sys.argv[1:])
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f'peak resident memory: {peak_kib / 1024:.1f} MiB '
      f'(target <= 350 MiB){"" if peak_kib <= 350 * 1024 else "  MISSED"}')
sys.exit(status)
