"""The ``au`` command line."""
