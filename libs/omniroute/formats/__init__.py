"""Pure translation between the wire formats OmniRoute speaks and the canonical format.

The canonical format is OpenAI chat completions (request, response and stream chunk JSON).
Every module here is free of I/O so that it can be tested in isolation.
"""

from omniroute.formats.errors import FormatError

__all__ = ["FormatError"]
