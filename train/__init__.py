"""moodcast training: FER2013 → a small Keras CNN, with an evaluation report."""
