"""The one exception both the cloud classifier (``cloud``) and its AWS adapters (``adapters.aws``) raise for an object
that can never be classified; it lives here so that neither module imports the other."""


class FrameRejected(Exception):
    """This object can never be classified (the reason says why); it gets an error record, the batch goes on."""
