"""Powertools Parser models: every event is validated here, at the edge."""
