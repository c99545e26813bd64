"""Validate moodcast's discovery payloads with an installed Home Assistant's own MQTT discovery schemas.

Run with the Python of a virtual environment that has ``homeassistant`` installed (not a moodcast dependency):

    python3.11 -m venv /tmp/ha2024 && /tmp/ha2024/bin/pip install homeassistant==2024.3.3
    PYTHONPATH=. /tmp/ha2024/bin/python -m tools.ha_discovery_check

Each payload goes through ``homeassistant.components.mqtt.<component>.DISCOVERY_SCHEMA``, what Home
Assistant runs on a discovery message (inside its event loop, as 2025 and later require for templates). It
prints, per payload, whether it is valid and which keys that release drops as unknown (``default_entity_id``
before 2025.10, ``object_id`` from 2026.4), and exits 1 when any payload is invalid.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import tempfile

from device.console import print_out
from device.outputs.discovery import discovery_configs

PROG = "ha_discovery_check"


async def check() -> bool:
    from homeassistant.const import __version__
    from homeassistant.core import HomeAssistant

    with tempfile.TemporaryDirectory() as config_dir:
        HomeAssistant(config_dir)  # the instance template validation looks up
        configs = discovery_configs(
            "homeassistant",
            "Pi-Hall.2",
            "moodcast/Pi-Hall.2/state",
            "moodcast/Pi-Hall.2/status",
            "moodcast/Pi-Hall.2/events",
        )
        valid = True
        for topic, payload in configs.items():
            component = topic.split("/")[1]
            schema = importlib.import_module(f"homeassistant.components.mqtt.{component}").DISCOVERY_SCHEMA
            try:
                kept = schema(dict(payload))
            except Exception as err:  # voluptuous's Invalid, or probatio's in later releases
                valid = False
                print_out(f"Home Assistant {__version__}: {topic}: INVALID: {err}", PROG)
                continue
            dropped = sorted(set(payload) - set(kept))
            print_out(f"Home Assistant {__version__}: {topic}: valid; dropped {dropped}", PROG)
    return valid


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(check()) else 1)
