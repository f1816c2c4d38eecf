"""The GitHub workflows pass zizmor's audit (offline: no GitHub API), so a new finding fails CI.

Checked by hand once: deleting `persist-credentials: false` from site.yml's checkout makes this test fail
(artipacked, medium); a workflow that is not valid is an error too (`--strict-collection`), not a skipped file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT

ZIZMOR = Path(sys.executable).with_name("zizmor")


def test_workflows_have_no_zizmor_findings():
    assert ZIZMOR.exists(), f"{ZIZMOR} is missing: `make venv` installs zizmor from requirements.txt"
    run = subprocess.run([str(ZIZMOR), "--offline", "--no-progress", "--strict-collection", str(ROOT / ".github" / "workflows")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "No findings to report" in run.stdout, run.stdout + run.stderr
