"""Grading a class: many submissions in sandboxes, side by side (``batch``: ``learnkd grade``), the class
report it writes (``report``), the Gradescope autograder bundle (``gradescope``) and the GitHub Classroom
workflow (``github``)."""
