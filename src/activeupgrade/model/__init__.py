"""The state model: closed vocabularies and the transition graph, declared as data."""
