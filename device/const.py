"""Constants of the device package."""

APP_NAME = "moodcast"
ENV_PREFIX = "MOODCAST_"
DEFAULT_CONFIG_PATH = "/etc/moodcast/moodcast.toml"
DEFAULT_MODEL_PATH = "models/emotion-int8.tflite"
EVENT_SCHEMA_VERSION = 1
CARD_SCHEMA_VERSION = 1
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"
SUMMARY_INTERVAL_S = 60.0
