#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu, with internet).
set -euo pipefail
AUTOGRADER="${LEARNKD_AUTOGRADER:-/autograder}"
SOURCE="$AUTOGRADER/source"
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip bubblewrap
python3 -m venv "$AUTOGRADER/venv"
"$AUTOGRADER/venv/bin/pip" install --upgrade pip
"$AUTOGRADER/venv/bin/pip" install torch torchvision --index-url https://download.pytorch.org/whl/cpu
"$AUTOGRADER/venv/bin/pip" install "$SOURCE/learnkd"
rm -rf "$SOURCE/learnkd"  # the installed copy is the one that runs; the reference is not left lying around
if [ ! -d "$SOURCE/data/MNIST/raw" ]; then
    LEARNKD_DATA="$SOURCE/data" "$AUTOGRADER/venv/bin/python" -c \
        "from grader.lab.data import load_mnist; load_mnist('train'); load_mnist('test')"
fi
chmod -R a+rX "$SOURCE/data"
# The learner's code runs as this user: it may not read the reference, write /autograder/results or leave
# processes behind. The installed reference and grader are root's alone, but for the worker's own package.
id -u @RUN_AS@ >/dev/null 2>&1 || useradd --system --create-home @RUN_AS@
SITE="$("$AUTOGRADER/venv/bin/python" -c 'import grader, os; print(os.path.dirname(os.path.dirname(os.path.abspath(grader.__file__))))')"
chmod -R go-rwx "$SITE/solutions" "$SITE/grader"
chmod go+x "$SITE/grader"
chmod -R go+rX "$SITE/grader/worker"
