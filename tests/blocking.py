"""Run Python in a subprocess where chosen packages cannot be imported (a device without them)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

_BLOCKER = """
import sys
class _Block:
    blocked = {blocked!r}
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by test)", name=name)
        return None
sys.meta_path.insert(0, _Block())
"""


def run_blocked(code: str, *, blocked: tuple[str, ...]) -> subprocess.CompletedProcess:
    script = _BLOCKER.format(blocked=set(blocked)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
