"""Frame sources: the FrameSource interface and its camera and video backends (picamera2, OpenCV)."""
