"""The arrows between the parts (pyproject [tool.importlinter], DESIGN.md "Layout") and the size of a module.

The contracts run on the tree as it is, and on a copy with one forbidden import added, to show they bite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.store.enterprises import NOTIFY_CHANNEL
from connectors.base import CONFIG_CHANGED

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "connectors", "admin")
MAX_LINES = 400
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: the copy's packages shadow the installed ones
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def copy_of_tree(dest: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("agent/tracking/phones.py", "import agent.store.database", "the call tracker is pure"),
        ("agent/ingest/pipeline.py", "from agent.repair import catchup", "the AMI side never reaches"),
        ("agent/ingest/link.py", "import connectors.registry", "the AMI side never reaches"),
        ("agent/redirect/router.py", "import agent.delivery.integrations", "smart redirect never reaches delivery"),
        ("connectors/retailcrm/plan.py", "import agent.store.enterprises", "connectors import from agent only"),
        ("agent/store/enterprises.py", "import connectors.retailcrm.settings", "the store imports neither"),
        ("agent/web/health.py", "import admin.pages", "only the composition root"),
        ("agent/delivery/outbox.py", "import agent.parts.store", "only the composition root"),
        ("connectors/retailcrm/routes.py", "import agent.parts.adapters", "only the composition root"),
        ("admin/amocrm_api.py", "import agent.parts.adapters", "the admin site never reaches back"),
    ],
)
def test_a_forbidden_import_breaks_the_build(tmp_path: Path, module: str, line: str, contract: str) -> None:
    tree = copy_of_tree(tmp_path)
    target = tree / module
    target.write_text(target.read_text() + f"\n{line}  # forbidden\n")
    result = lint_imports(tree)
    assert result.returncode != 0, result.stdout
    assert "0 broken" not in result.stdout, result.stdout  # one import may break more than one contract
    report = result.stdout.split("Broken contracts", 1)[-1]  # after the summary: only the broken one's details
    assert contract in " ".join(report.split()), result.stdout


def test_no_module_outgrows_its_room() -> None:
    """A module past ~400 lines is usually two (DESIGN.md)."""
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_no_wait_for_that_can_swallow_a_cancel() -> None:
    """Python 3.11's asyncio.wait_for returns the awaited result when it lands in the same turn as a cancel, and the
    cancel is lost (a pipeline that never stopped, tests/test_ami_link.py): `async with asyncio.timeout()` it is."""
    users = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "wait_for(" in path.read_text()
    ]
    assert users == []


def test_store_and_connectors_name_the_same_notify_channel() -> None:
    assert CONFIG_CHANGED == NOTIFY_CHANNEL
