"""The hidden checks: pytest modules, one marker per topic, run by ``grader.runner``."""
