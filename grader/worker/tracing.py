"""Running a learner's train_model and distill on probes, and recording what they did (tasks train.*)."""
