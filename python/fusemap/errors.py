"""Exception and warning types users can catch."""


class FuseMapInputError(ValueError):
    """Input that fusemap cannot use; the message names the argument, what was found and the fix."""


class FuseMapModelError(RuntimeError):
    """A saved model directory that is missing, incomplete or inconsistent."""


class FuseMapWarning(UserWarning):
    """Something the user should act on, but that does not stop the run."""
