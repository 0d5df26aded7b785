"""The learnkd exercises: fill in each stub, then run `learnkd check TOPIC`.

models.py    a big Teacher CNN and a tiny Student CNN          learnkd check models
loss.py      soft targets and the distillation loss             learnkd check loss
train.py     training on hard labels, distilling a student     learnkd check train
evaluate.py  accuracy on a data set                             learnkd check evaluate
"""
