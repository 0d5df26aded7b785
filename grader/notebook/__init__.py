"""The lab notebook: built from the exercise stubs or the solutions (``build``), and its exercise cells
read back for grading."""
