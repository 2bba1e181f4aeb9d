"""Reward models: success classifier, preference (Bradley-Terry) model, zero-shot CLIP
reward, and the RewardService that combines them for the actor.

Submodules are imported directly (`from robolearn.rewards.classifier import
train_classifier`), so importing one source never loads another's heavy dependencies.
"""

# torch's optimisers import torch._dynamo, which loads triton; loading triton after MuJoCo
# has created its EGL renderer in the same process segfaults (measured with torch 2.14 and
# Mesa EGL). Importing it here, before any reward model trains beside a sim renderer,
# avoids that.
import torch._dynamo  # noqa: F401
