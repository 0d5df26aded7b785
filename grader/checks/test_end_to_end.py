"""Hidden checks of `all`: the learner's own code, end to end on real MNIST.

They run only once every topic passes. One training run (a session fixture) serves all of them.
"""

from types import SimpleNamespace

import pytest

from grader import runner
from grader.checking import expect
from grader.pipeline import DISTILLED, HARD, TEACHER, comparison_table, run_pipeline
from grader.topics import schedule

pytestmark = [pytest.mark.all, pytest.mark.timeout(1200)]

# Floors for the learner's models, set below the reference's figures over 20 seeds of `check all --solutions`
# (benchmarks/seeds_check_all.py: teacher 99.07-99.29%, distilled student 98.14-98.55%) with room for a
# learner's own models and loops: the seed lab's constant-learning-rate loops with the hinted models
# (tests/correct/train/seed_lab.py, `seeds_check_all.py --path`) reach 98.63-98.93% (teacher) and
# 97.73-98.17% (distilled student) over 6 seeds.
TEACHER_FLOOR = 0.983
STUDENT_FLOOR = 0.970


@pytest.fixture(scope="session")
def pipeline(request, submission, options):
    failed = sorted(request.config.learnkd_failed_topics)
    if failed:
        pytest.skip(f"fix the failing topics first ({', '.join(failed)}); then `learnkd check all` trains your models on MNIST")
    code = SimpleNamespace(models=submission.models, train=submission.train, evaluate=submission.evaluate)
    reports = run_pipeline(code, data_dir=options.data_dir, device=options.device, seed=options.seed,
                           cache_dir=options.cache_dir, cache_folder=options.path,
                           stream=runner.progress_stream, log=runner.progress)
    return reports


def test_teacher_reaches_the_floor(pipeline, request):
    """your Teacher, trained with your train_model, reaches the accuracy floor on the MNIST test set"""
    request.node.learnkd_output = "\n".join("    " + line for line in comparison_table(pipeline).splitlines())
    accuracy = pipeline[TEACHER].accuracy
    expect(accuracy >= TEACHER_FLOOR,
           f"your Teacher reached {accuracy:.2%} on the test set; it needs at least {TEACHER_FLOOR:.1%}. "
           f"Its topics pass, so the model is too weak for {schedule()['epochs']} epochs: give it more channels or a "
           "hidden Linear layer, and no global average pooling (learnkd hint models).")


def test_distilled_student_reaches_the_floor(pipeline):
    """your Student, distilled from your Teacher, reaches the accuracy floor"""
    accuracy = pipeline[DISTILLED].accuracy
    expect(accuracy >= STUDENT_FLOOR,
           f"your distilled Student reached {accuracy:.2%} on the test set; it needs at least {STUDENT_FLOOR:.1%}. "
           f"Trained on hard labels alone it reached {pipeline[HARD].accuracy:.2%}. If both are low, the Student is "
           "too small or pools away the image (learnkd hint models); if only the distilled one is, check that "
           "distill passes T and alpha on and keeps the teacher in eval mode.")


def test_student_is_much_smaller_than_the_teacher(pipeline):
    """the Student has at least 10x fewer parameters than the Teacher"""
    teacher, student = pipeline[TEACHER].parameters, pipeline[DISTILLED].parameters
    expect(student * 10 <= teacher,
           f"your Student has {student:,} parameters and your Teacher {teacher:,}: only {teacher / student:.1f}x "
           "more. Distillation is about a much smaller model: make the Student smaller or the Teacher larger.")
