"""The error a user can cause while converting, printed by ``__main__`` as one line."""


class ConvertError(Exception):
    """A missing or unreadable input, a failed conversion or a failed check; the message says what to do."""


class AccuracyDropError(ConvertError):
    """The converted model scores too far below the Keras model on the report split."""
