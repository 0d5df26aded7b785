"""The end-to-end trainings on MNIST with the learner's code (tasks pipeline.*)."""
