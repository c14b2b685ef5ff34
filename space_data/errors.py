"""Errors that are about the installation or the configuration, not about one clip.

Extraction turns every problem with a clip into a recorded reason and carries on; a
`SetupError` (missing model weights, an unreadable checkpoint) would fail every clip the same
way, so it stops the run with its message instead.
"""


class SetupError(RuntimeError):
    """The installation or the configuration is wrong; the message names the thing and the fix."""
