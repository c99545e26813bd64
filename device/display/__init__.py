"""The screen: display backends (framebuffer, window, video, none) and the overlay drawn on frames."""
