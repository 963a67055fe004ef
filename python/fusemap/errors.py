"""Exception and warning types users can catch."""


class FuseMapInputError(ValueError):
    """Input that fusemap cannot use; the message names the argument, what was found and the fix.

    Raised before any work is done whenever possible (all problems of the input at once). It is a
    :class:`ValueError`, so code catching that keeps working.

    Examples
    --------
    >>> try:
    ...     fusemap.integrate(sections, n_latent=-1)
    ... except fusemap.FuseMapInputError as exc:
    ...     print(exc)
    option n_latent=-1 is invalid; use an integer >= 2.
    """


class FuseMapModelError(RuntimeError):
    """A saved model directory that is missing, incomplete or inconsistent, or a model used in a way
    its state does not allow (mapping onto an untrained model, retraining a mapped one).

    Examples
    --------
    >>> try:
    ...     fusemap.FuseMap.load("not_a_model")
    ... except fusemap.FuseMapModelError as exc:
    ...     print(exc)  # doctest: +ELLIPSIS
    model='not_a_model' is not a directory. ...
    """


class FuseMapWarning(UserWarning):
    """Something the user should act on, but that does not stop the run (e.g. rare classes left
    out of a label transfer, a query sharing few genes with the reference).

    Examples
    --------
    >>> import warnings
    >>> warnings.simplefilter("error", fusemap.FuseMapWarning)  # make them errors in a pipeline
    """
