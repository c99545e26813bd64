"""moodcast conversion: Keras model → quantized TFLite model + model card."""
