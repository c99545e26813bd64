"""Home Assistant MQTT discovery: the retained config payloads that make the device appear by itself."""

from __future__ import annotations

import re
from typing import Any

from device.const import APP_NAME, STATUS_OFFLINE, STATUS_ONLINE


def node_id(device_id: str) -> str:
    """The device id as Home Assistant allows it in a discovery topic."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", device_id)


def discovery_configs(
    discovery_prefix: str, device_id: str, state_topic: str, status_topic: str
) -> dict[str, dict[str, Any]]:
    """Retained discovery configs by topic: the face count and the dominant emotion."""
    node = node_id(device_id)
    device = {
        "identifiers": [f"{APP_NAME}_{node}"],
        "name": f"{APP_NAME} {device_id}",
        "manufacturer": APP_NAME,
        "model": "facial-emotion camera",
    }
    common = {
        "state_topic": state_topic,
        "availability_topic": status_topic,
        "payload_available": STATUS_ONLINE,
        "payload_not_available": STATUS_OFFLINE,
        "device": device,
    }
    sensors = {
        "faces": {
            "name": "Faces",
            "value_template": "{{ value_json.faces }}",
            "state_class": "measurement",
            "icon": "mdi:face-recognition",
        },
        "dominant_emotion": {
            "name": "Dominant emotion",
            "value_template": "{{ value_json.dominant if value_json.dominant else 'none' }}",
            "icon": "mdi:emoticon-outline",
        },
    }
    return {
        f"{discovery_prefix}/sensor/{node}/{obj}/config": {
            **sensor,
            "unique_id": f"{APP_NAME}_{node}_{obj}",
            "object_id": f"{APP_NAME}_{node}_{obj}",
            **common,
        }
        for obj, sensor in sensors.items()
    }
