"""The hidden checks: pytest modules, one marker per topic, run by the judge (``grader.grading.judge``)."""
