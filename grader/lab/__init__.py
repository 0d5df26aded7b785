"""The lab's training on MNIST, outside any grading: the data, the end-to-end pipeline and its teacher
cache, the latency method, the report with its plots, and the experiments (``learnkd reference``,
``report``, ``experiment``)."""
