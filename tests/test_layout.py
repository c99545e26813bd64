"""README's Layout section names every module of device/, so a new module cannot go undocumented."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def layout_section() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL)
    assert match, "README has no '## Layout' section"
    return match.group(1)


def test_every_device_module_is_named_in_the_readme_layout() -> None:
    layout = layout_section()
    named = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", layout))
    modules = sorted(path for path in (ROOT / "device").rglob("*.py") if path.name != "__init__.py")
    assert modules
    unnamed = [str(path.relative_to(ROOT)) for path in modules if path.stem not in named]
    assert not unnamed, f"README's Layout section does not name {unnamed}"
