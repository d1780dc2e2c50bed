"""Scores, likelihoods, figures and the comparison report for every stage-1 model and prior."""
