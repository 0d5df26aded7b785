"""Grading a class: many submissions in sandboxes, side by side (``batch``: ``learnkd grade``), and the
Gradescope autograder bundle (``gradescope``)."""
