"""From a frame to face events: detection, the one crop function, classification, tracking, the pipeline."""
