"""The course itself: its topics and hints (``topics.toml``), the points of each check (``points.toml``),
the learner's progress, and how the exercise stubs are made from the solutions (``stubs``)."""
