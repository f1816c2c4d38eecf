"""Check the Colab install path without Colab: ``python tools/colab_check.py [--notebook SLUG] [--ref REF]``.

Colab's runtime pins ``ipython==7.34.0`` through its ``google-colab`` package and ships ipywidgets 7.7,
imported as the kernel starts; upgrading ipython, ipykernel, tornado, pyzmq or traitlets there crashes
the runtime until a factory reset, and upgrading an imported ipywidgets forces a restart. So the setup
cell's ``pip install "kexue_lite @ git+..."`` must change nothing that is installed. This script:

1. builds a virtual environment holding Colab's sensitive versions (:data:`COLAB`: ipython 7.34.0,
   ipywidgets 7.7.1, ipykernel, traitlets, tornado, pyzmq as on Colab, and a torch and numpy other than
   requirements.txt's pins);
2. asks pip, with ``--dry-run --report``, what installing kexue_lite from a git URL of this repository
   (``git+file://`` of this clone, at ``--ref``, default HEAD) would install, and fails if any package
   already installed would be upgraded or downgraded;
3. executes one notebook's ``.ipynb`` (default ``rope``) in a kernel of that environment, with a stub
   ``google.colab`` imported as the kernel starts (as Colab does), so that the setup cell's own install
   command runs (pointed at the local clone), and checks that its live slider (an ipywidgets widget) was
   built.

It downloads a few hundred MB of wheels (torch). The weekly workflow runs it; run it by hand after changing
``pyproject.toml``'s dependencies. Exit status 0 when all three steps pass.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

from kexue_book import load_catalogue, repository  # noqa: E402

#: What Colab's runtime holds that must not move (2025 runtime), and an older torch/numpy than our pins.
COLAB = {
    "ipython": "7.34.0",
    "ipywidgets": "7.7.1",
    "ipykernel": "6.17.1",
    "jupyter-client": "7.4.9",
    "traitlets": "5.7.1",
    "tornado": "6.4.2",
    "pyzmq": "26.2.1",
    "numpy": "2.0.2",
    "scipy": "1.14.1",
    "sympy": "1.13.1",
    "matplotlib": "3.10.0",
    "torch": "2.5.1",
}


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, text=True, **kwargs)


def build_env(where: Path) -> Path:
    """The Colab-like environment in ``where`` (reused when it is already there)."""
    python = where / "bin" / "python"
    if not python.exists():
        venv.create(where, with_pip=True)
        run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])  # Colab's pip is recent
    run([str(python), "-m", "pip", "install", "-q", *(f"{k}=={v}" for k, v in COLAB.items())])
    return python


def installed(python: Path) -> dict[str, str]:
    out = run([str(python), "-m", "pip", "list", "--format=json"], capture_output=True).stdout
    return {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(out)}


def changes(python: Path, spec: str, report: Path) -> list[str]:
    """What ``pip install spec`` would change among the installed packages (from pip's report)."""
    run([str(python), "-m", "pip", "install", "-q", "--dry-run", "--report", str(report), spec])
    have = installed(python)
    moved = []
    for item in json.loads(report.read_text())["install"]:
        name = item["metadata"]["name"].lower().replace("_", "-")
        version = item["metadata"]["version"]
        if name in have and have[name] != version:
            moved.append(f"{name} {have[name]} -> {version}")
    return moved


def execute(python: Path, slug: str, url: str, tmp: Path) -> None:
    """Run the notebook in a kernel of ``python`` with ``google.colab`` imported at start-up."""
    import nbformat
    from nbclient import NotebookClient

    article = next(a for a in load_catalogue()[1] if a.slug == slug and a.exists)
    stub = tmp / "stub" / "google" / "colab"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('"""A stand-in for Colab\'s google.colab package."""\n')
    kernel = tmp / "share" / "jupyter" / "kernels" / "colab"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.exec_lines=import google.colab"],
        "display_name": "colab-like", "language": "python",
        "env": {"PYTHONPATH": str(tmp / "stub"), "KEXUE_STATIC": "0", "KEXUE_FULL": "0"},
    }))
    os.environ["JUPYTER_PATH"] = str(tmp / "share" / "jupyter")
    nb = nbformat.read(ROOT / article.ipynb, as_version=4)
    repo_url, branch = repository()
    setup = nb.cells[1]
    assert f"git+{repo_url}@{branch}" in setup.source, "the setup cell installs from the repository's git URL"
    setup.source = setup.source.replace(f"git+{repo_url}@{branch}", url)
    NotebookClient(nb, timeout=600, kernel_name="colab", resources={"metadata": {"path": str(tmp)}}).execute()
    views = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    if not views:
        raise SystemExit(f"{slug}: no live slider (ipywidgets view) among the outputs")
    print(f"{slug}: executed in the Colab-like kernel; {len(views)} widget view(s) built")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebook", default="rope", help="slug of the notebook to execute (default rope)")
    parser.add_argument("--ref", default="HEAD", help="git ref of this clone to install (default HEAD)")
    parser.add_argument("--dry-run-only", action="store_true", help="stop after the pip report (step 2)")
    parser.add_argument("--env", type=Path, help="keep (and reuse) the Colab-like environment in this folder")
    args = parser.parse_args(argv)
    ref = run(["git", "-C", str(ROOT), "rev-parse", args.ref], capture_output=True).stdout.strip()
    url = f"git+file://{ROOT}@{ref}"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        python = build_env(args.env.resolve() if args.env else tmp / "colab")
        moved = changes(python, f"kexue_lite @ {url}", tmp / "report.json")
        if moved:
            print("installing kexue_lite would change Colab's packages:\n  " + "\n  ".join(moved))
            return 1
        print(f"installing kexue_lite at {ref[:10]} changes none of the installed packages")
        if not args.dry_run_only:
            execute(python, args.notebook, url, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
