"""Home Assistant MQTT discovery: the retained config payloads that make the device appear by itself."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from device.const import APP_NAME, STATUS_OFFLINE, STATUS_ONLINE


def node_id(device_id: str) -> str:
    """The device id as Home Assistant allows it in a discovery topic (letters, digits, ``_`` and ``-``): the
    id itself when it holds nothing else (a host name, the default), else the others as ``_`` plus 6 hex
    digits of the id's SHA-1. Without them ``Pi.Hall`` and ``Pi_Hall`` (and any two non-ASCII ids of one
    length) shared one topic, unique ids and device, and the second daemon hid the first."""
    node = re.sub(r"[^a-zA-Z0-9_-]", "_", device_id)
    if node == device_id:
        return node
    return f"{node}_{hashlib.sha1(device_id.encode()).hexdigest()[:6]}"


def entity_slug(text: str) -> str:
    """``text`` as Home Assistant allows it in an entity id: lower case letters, digits and ``_``."""
    return re.sub(r"[^a-z0-9_]", "_", text.lower())


def discovery_configs(
    discovery_prefix: str, device_id: str, state_topic: str, status_topic: str, events_topic: str = ""
) -> dict[str, dict[str, Any]]:
    """Retained discovery configs by topic: the face count, the dominant emotion, the room mood, a camera
    problem and, given the events topic, an ``event`` entity that fires on every face event.

    The room mood sensor's state is the emotion with the largest share across faces over ``mood.window_s``
    (the state's ``mood``), its attributes each emotion's share. The event entity's ``value_template`` turns
    a face event into Home Assistant's event payload: ``event_type`` (``new``, ``update``, ``end``) plus the
    face id, emotion and confidence as the event's attributes, so an automation can trigger on an emotion
    without a template of its own.

    The entity id is suggested twice, so that it is the same on every Home Assistant in use:
    ``default_entity_id`` (``sensor.moodcast_<node>_faces``), read since 2025.10, and the older
    ``object_id``, which 2025.10 deprecated and 2026.4 ignores. Releases before 2025.10 drop the key they
    do not know from a discovery payload, so each release reads the one it knows.
    """
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
    sensors: dict[tuple[str, str], dict[str, Any]] = {
        ("sensor", "faces"): {
            "name": "Faces",
            "value_template": "{{ value_json.faces }}",
            "state_class": "measurement",
            "icon": "mdi:face-recognition",
        },
        ("sensor", "dominant_emotion"): {
            "name": "Dominant emotion",
            "value_template": "{{ value_json.dominant if value_json.dominant else 'none' }}",
            "icon": "mdi:emoticon-outline",
        },
        ("sensor", "room_mood"): {
            "name": "Room mood",
            "value_template": "{{ value_json.mood if value_json.mood else 'none' }}",
            "json_attributes_topic": state_topic,
            "json_attributes_template": "{{ (value_json.mood_shares or {}) | tojson }}",
            "icon": "mdi:emoticon-happy-outline",
        },
        # on while the camera delivers nothing and the daemon is reopening it (the state's "camera")
        ("binary_sensor", "camera_problem"): {
            "name": "Camera problem",
            "device_class": "problem",
            "entity_category": "diagnostic",
            "value_template": "{{ 'ON' if value_json.camera == 'lost' else 'OFF' }}",
        },
    }
    if events_topic:
        sensors[("event", "face")] = {
            "name": "Face event",
            "state_topic": events_topic,
            "event_types": ["new", "update", "end"],
            "value_template": (
                "{{ {'event_type': value_json.type, 'face_id': value_json.face_id,"
                " 'emotion': value_json.emotion, 'confidence': value_json.confidence} | tojson }}"
            ),
            "icon": "mdi:face-recognition",
        }
    return {
        f"{discovery_prefix}/{component}/{node}/{obj}/config": {
            **sensor,
            "unique_id": f"{APP_NAME}_{node}_{obj}",
            "default_entity_id": f"{component}.{entity_slug(f'{APP_NAME}_{node}_{obj}')}",
            "object_id": entity_slug(f"{APP_NAME}_{node}_{obj}"),
            **common,
            **({"state_topic": sensor["state_topic"]} if "state_topic" in sensor else {}),
        }
        for (component, obj), sensor in sensors.items()
    }
