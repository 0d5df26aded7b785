"""Hidden checks of `all`: the learner's own code, end to end on real MNIST.

They run only once every topic passes. One run (a session fixture, ``grader.grading.end_to_end``) serves
all of them: the worker trains the learner's models with the learner's loops on the training split,
and the judge measures each returned graph on the test split, which the learner's code never sees.
"""

import pytest

from grader.grading.checking import expect
from grader.grading import end_to_end, session
from grader.lab.pipeline import DISTILLED, HARD, TEACHER
from grader.lab.report import comparison_text
from grader.course.topics import schedule

pytestmark = [pytest.mark.all]

# Floors for the learner's models, set below the reference's figures over 20 seeds of `check all --solutions`
# (benchmarks/seeds_check_all.py: teacher 99.07-99.29%, distilled student 98.14-98.55%) with room for a
# learner's own models and loops: the seed lab's constant-learning-rate loops with the hinted models
# (measured with their distill, which never calls teacher.eval(); the same loops with it are
# tests/correct/train/seed_lab_teacher_eval.py, `seeds_check_all.py --path`) reach 98.63-98.93% (teacher) and
# 97.73-98.17% (distilled student) over 6 seeds.
TEACHER_FLOOR = 0.983
STUDENT_FLOOR = 0.970
RATIO = 10


@pytest.fixture(scope="session")
def pipeline(request, submission, options) -> end_to_end.EndToEnd:
    failed = sorted(request.config.learnkd_failed_topics)
    if failed:
        pytest.skip(f"fix the failing topics first ({', '.join(failed)}); then `learnkd check all` trains your models on MNIST")
    return end_to_end.run(submission, data_dir=options.data_dir, device=options.device, seed=options.seed,
                          cache_dir=options.cache_dir, folder=options.path, progress=not session.quiet,
                          log=session.progress)


def test_teacher_reaches_the_floor(pipeline, request):
    """your Teacher, trained with your train_model, reaches the accuracy floor on the MNIST test set"""
    if pipeline.reports:
        text = comparison_text(pipeline.reports, pipeline.train_examples, pipeline.test_examples)
        request.node.learnkd_output = "\n".join(("    " + line).rstrip() for line in text.splitlines())
    accuracy = pipeline.report(TEACHER).accuracy
    expect(accuracy >= TEACHER_FLOOR,
           f"your Teacher reached {accuracy:.2%} on the test set; it needs at least {TEACHER_FLOOR:.1%}. "
           f"Its topics pass, so the model is too weak for {schedule()['epochs']} epochs: give it more channels or a "
           "hidden Linear layer, and no global average pooling (learnkd hint models).")


def test_distilled_student_reaches_the_floor(pipeline):
    """your Student, distilled from your Teacher, reaches the accuracy floor"""
    accuracy = pipeline.report(DISTILLED).accuracy
    hard = pipeline.reports.get(HARD)
    alone = f"Trained on hard labels alone it reached {hard.accuracy:.2%}. " if hard else ""
    expect(accuracy >= STUDENT_FLOOR,
           f"your distilled Student reached {accuracy:.2%} on the test set; it needs at least {STUDENT_FLOOR:.1%}. "
           f"{alone}If both are low, the Student is too small or pools away the image (learnkd hint models); if "
           "only the distilled one is, check that distill passes T and alpha on and keeps the teacher in eval mode.")


def test_student_is_much_smaller_than_the_teacher(pipeline):
    """the Student has at least 10x fewer parameters than the Teacher"""
    teacher, student = pipeline.report(TEACHER).parameters, pipeline.report(DISTILLED).parameters
    expect(student * RATIO <= teacher,
           f"your Student has {student:,} parameters and your Teacher {teacher:,}: only "
           f"{teacher / max(student, 1):.1f}x more. Distillation is about a much smaller model: make the Student "
           "smaller or the Teacher larger.")
