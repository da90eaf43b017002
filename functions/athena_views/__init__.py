"""Deploy-time Athena views: the on-event handler of the ``Custom::AthenaViews`` resource (``handler.py``)."""
