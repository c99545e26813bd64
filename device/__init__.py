"""moodcast device daemon: camera → faces → emotions → display and events."""
