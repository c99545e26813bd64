"""moodcast's version for ``--version``: the installed distribution's, else the tree's pyproject.toml."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from device.const import APP_NAME
from device.errors import MoodcastError

# Beside device/ in the project and in a release on the Pi (make deploy uploads it, and installs nothing)
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def version() -> str:
    """The version, e.g. "0.1.0": the installed ``moodcast`` distribution's (pip install, the Makefile's
    editable .venv), else ``project.version`` of the pyproject.toml beside device/ (a release that make deploy
    copied to the Pi without installing it).

    Raises:
        MoodcastError: no distribution is installed and that pyproject.toml cannot be read or has no
            ``project.version`` (one line naming the file).
    """
    try:
        return metadata.version(APP_NAME)
    except metadata.PackageNotFoundError:
        pass
    try:
        with PYPROJECT.open("rb") as file:
            project = tomllib.load(file).get("project")
    except OSError as err:
        raise MoodcastError(
            f"version unknown: no {APP_NAME} distribution is installed and {PYPROJECT} cannot be read "
            f"({err.strerror}); install the project (pip install .) or put its pyproject.toml there"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise MoodcastError(
            f"version unknown: {PYPROJECT} is not valid TOML ({err}); restore the project's file"
        ) from None
    found = project.get("version") if isinstance(project, dict) else None
    if not isinstance(found, str) or not found:
        raise MoodcastError(
            f"version unknown: {PYPROJECT} has no [project] version; "
            'expected a string such as version = "0.1.0"'
        )
    return found
