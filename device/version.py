"""moodcast's version for ``--version``: the running tree's pyproject.toml, else the installed package's."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from device.const import APP_NAME
from device.errors import MoodcastError

# Beside device/ in the project and in a release on the Pi (make deploy uploads it, and installs nothing)
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def version() -> str:
    """The version of the code that runs, e.g. "0.1.0": ``project.version`` of the pyproject.toml beside
    device/ (the project, and a release that make deploy copied to the Pi without installing it), else the
    installed ``moodcast`` distribution's (``pip install .``, which leaves no pyproject.toml beside the
    package). The tree's file comes first: an editable install's metadata keeps the version it was installed
    with until it is installed again.

    Raises:
        MoodcastError: the pyproject.toml beside device/ cannot be read, is not valid TOML or has no
            ``project.version``, or there is none and no distribution is installed (one line naming the file).
    """
    if not PYPROJECT.exists():
        try:
            return metadata.version(APP_NAME)
        except metadata.PackageNotFoundError:
            raise MoodcastError(
                f"version unknown: no {APP_NAME} distribution is installed and there is no {PYPROJECT}; "
                f"install the project (pip install .) or put its pyproject.toml there"
            ) from None
    try:
        with PYPROJECT.open("rb") as file:
            project = tomllib.load(file).get("project")
    except OSError as err:
        raise MoodcastError(f"version unknown: {PYPROJECT} cannot be read ({err.strerror})") from None
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
