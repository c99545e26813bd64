"""Constants of the training package."""

# FER2013's label order: the Kaggle ``emotion`` column indexes this list.
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
IMAGE_SIZE_PX = 48
SPLITS = ("Training", "PublicTest", "PrivateTest")
