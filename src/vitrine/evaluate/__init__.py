"""Offline evaluation: metrics, protocols, counterfactual estimators, reports."""
