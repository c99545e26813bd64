"""Event sinks: the event schema, JSON lines, MQTT publishing and its outbox."""
