"""Learning from behaviour: events, user profiles, (later) the training dataset, the model and its registry."""
