"""Learn: leakage-free training examples, Keras MLP training, evaluation against baselines, reports."""
