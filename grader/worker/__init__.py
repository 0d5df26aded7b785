"""The worker: the only place where a learner's code runs, inside the sandbox.

It imports the submission, runs its functions when the judge asks (``tasks``), and answers with plain
data (``wire``). It holds no check, no tolerance, no expected value and no reference: the judge
decides. This package imports only the standard library, torch and itself (relative imports), so
that the sandbox can mount it alone, as ``learnkd_worker``, with the rest of the grader out of view.
"""
