"""Validate moodcast's discovery payloads with an installed Home Assistant's own MQTT discovery schemas.

Run with the Python of a virtual environment that has ``homeassistant`` installed (not a moodcast dependency):

    python3.11 -m venv /tmp/ha2024 && /tmp/ha2024/bin/pip install homeassistant==2024.3.3
    PYTHONPATH=. /tmp/ha2024/bin/python -m tools.ha_discovery_check

Each payload goes through ``homeassistant.components.mqtt.<component>.DISCOVERY_SCHEMA``, what Home
Assistant runs on a discovery message (inside its event loop, as 2025 and later require for templates). It
talks to no running Home Assistant: the installed package is the release checked. It prints, per payload,
whether it is valid and which keys that release drops as unknown (``default_entity_id`` before 2025.10,
``object_id`` from 2026.4), or that the release has no MQTT discovery for its component, and exits 1 when any
payload is invalid or unsupported. A Home Assistant not installed in this Python, or failing to import, is one
line on stderr and exit 1; a wrong command line is argparse's usage error and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from device.console import print_err, print_out
from device.outputs.discovery import discovery_configs

PROG = "ha_discovery_check"
Schema = Callable[[dict[str, Any]], dict[str, Any]]


class HomeAssistantMissing(Exception):
    """Home Assistant is not installed in this Python, or is and fails to import: the message says which."""


def import_home_assistant(name: str) -> Any:
    """The module ``name`` of the installed Home Assistant (``homeassistant.core``). Raises
    HomeAssistantMissing when the package is not installed in this Python, or fails to import (a dependency
    missing or broken); Home Assistant's modules carry no type information, hence ``Any``."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name == "homeassistant":
            raise HomeAssistantMissing(
                f"Home Assistant is not installed for {sys.executable}; run this tool with the Python of a "
                "venv that has it (pip install homeassistant; see tools/ha_discovery_check.py)"
            ) from None
        raise HomeAssistantMissing(cannot_import(name, err)) from None
    except Exception as err:  # a broken install raises anything at import
        raise HomeAssistantMissing(cannot_import(name, err)) from None


def cannot_import(name: str, err: Exception) -> str:
    """The line for an installed Home Assistant whose module ``name`` failed to import with ``err``."""
    return f"Home Assistant cannot be imported: {name}: {type(err).__name__}: {err}; reinstall it"


def discovery_schema(component: str) -> Schema | None:
    """Home Assistant's discovery schema for ``component`` (``sensor``): a callable that returns the payload
    it keeps and raises on an invalid one; None when this release has no MQTT discovery for it (the MQTT
    ``event`` platform came in 2023.8). Raises HomeAssistantMissing when its module fails to import."""
    name = f"homeassistant.components.mqtt.{component}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name == name:  # the release has no such module, not a dependency of it missing
            return None
        raise HomeAssistantMissing(cannot_import(name, err)) from None
    except Exception as err:  # a broken install raises anything at import
        raise HomeAssistantMissing(cannot_import(name, err)) from None
    schema: Schema | None = getattr(module, "DISCOVERY_SCHEMA", None)
    return schema


def verdict(topic: str, payload: dict[str, Any]) -> tuple[bool, str]:
    """Whether the installed release accepts ``payload``, sent on the discovery ``topic``, and the line
    that says so: the keys it drops as unknown, its error, or that it has no discovery for that component."""
    component = topic.split("/")[1]
    schema = discovery_schema(component)
    if schema is None:
        return False, f"UNSUPPORTED: this release has no MQTT {component} discovery"
    try:
        kept = schema(dict(payload))
    except Exception as err:  # voluptuous's Invalid, or probatio's in later releases
        return False, f"INVALID: {err}"
    return True, f"valid; dropped {sorted(set(payload) - set(kept))}"


async def check() -> bool:
    """Run every discovery payload through the installed release's schema and print a line for each: True
    when all are valid. Raises HomeAssistantMissing when Home Assistant cannot be imported."""
    version = import_home_assistant("homeassistant.const").__version__
    home_assistant = import_home_assistant("homeassistant.core").HomeAssistant
    with tempfile.TemporaryDirectory() as config_dir:
        home_assistant(config_dir)  # the instance template validation looks up
        configs = discovery_configs(
            "homeassistant",
            "Pi-Hall.2",
            "moodcast/Pi-Hall.2/state",
            "moodcast/Pi-Hall.2/status",
            "moodcast/Pi-Hall.2/events",
        )
        valid = True
        for topic, payload in configs.items():
            accepted, line = verdict(topic, payload)
            valid = valid and accepted
            print_out(f"Home Assistant {version}: {topic}: {line}", PROG)
    return valid


def main(argv: list[str] | None = None) -> int:
    """Parse the (empty) command line and check: 0 when every payload is valid, 1 when one is not or Home
    Assistant cannot be imported (its one line on stderr); a usage error exits 2 through argparse."""
    parser = argparse.ArgumentParser(prog=f"python -m tools.{PROG}", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    try:
        return 0 if asyncio.run(check()) else 1
    except HomeAssistantMissing as err:
        print_err(f"{PROG}: {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
