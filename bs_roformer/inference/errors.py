"""The errors separation raises for bad input or output, as opposed to bugs.

A batch (`bs-roformer a.wav b.wav ...`) reports these, and OSError, per file and goes on; anything else is
a bug and ends the run with its traceback.
"""


class SeparationError(ValueError):
    """Input or output that cannot be separated as asked; the message names the file and what to do."""


class AudioFileError(SeparationError):
    """An input file that cannot be separated: missing, empty, unreadable, non-finite, too many channels."""
