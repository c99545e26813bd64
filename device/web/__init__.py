"""The HTTP server: health, metrics, snapshot and MJPEG stream."""
