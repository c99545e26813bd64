"""Errors a user can cause, each printed by ``__main__`` as one line."""


class MoodcastError(Exception):
    """A problem the user can fix: the message says what, where, and what to do."""


class ConfigError(MoodcastError):
    """A config key has a bad or unknown value; the message starts with the key."""

    def __init__(self, key: str, problem: str, fix: str = "fix or remove the key") -> None:
        super().__init__(f"{key}: {problem}; {fix}")
        self.key = key


class ModelError(MoodcastError):
    """The model file or its card is missing, corrupt or inconsistent."""


class CameraError(MoodcastError):
    """The frame source cannot be opened or read."""


class CameraUnavailable(CameraError):
    """A camera or stream that is configured right but cannot be opened now (unplugged, off, unreachable):
    worth retrying."""


class DisplayError(MoodcastError):
    """The display backend cannot be used."""


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message, or its type's name when it has none: a library's multi-line
    error (Keras, the TFLite converter) put into our one-line message."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
