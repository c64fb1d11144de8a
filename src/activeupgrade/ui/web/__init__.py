"""The web console served on the daemon's optional TCP listener."""
