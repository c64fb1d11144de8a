"""The session layer: what a session does, composed from the parts below it.

``recipe`` orders the steps of every request (volumes, Upgrade Side, services, actions,
backup, checks); ``host`` is the real Platform the engine runs them through; ``plan`` reads
the same recipe back as a dry run. This layer sits above ``platform`` and ``checks`` so
that neither needs the other's steps.
"""
