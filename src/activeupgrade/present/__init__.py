"""Presentation shared by the CLI and both consoles: the wording of the status bar, the
buttons and their costs, log entries and the plan, computed from API documents.

It sits above the API and below every user interface, which only listen: nothing here
changes state or talks to the daemon.
"""
