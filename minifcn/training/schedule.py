"""The learning rate of every iteration of a run: a policy (poly or fixed) with a linear warm-up."""

from ..optim import constant_lr, poly_lr, warmup

POLICIES = {"poly": poly_lr, "fixed": constant_lr}


class LearningRateSchedule:
    """``schedule(iteration)`` -> the learning rate of that iteration (0-based).

    ``policy`` "poly" falls from ``base_lr`` to 0 over ``total_iterations`` as base_lr * (1 - t/T)^0.9;
    "fixed" keeps ``base_lr``, as the reference did. The first ``warmup_iterations`` iterations scale it
    up linearly, so that the first large, noisy gradients of a random network meet small steps.
    """

    def __init__(self, base_lr, total_iterations, policy="poly", warmup_iterations=0):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {sorted(POLICIES)}, got {policy!r}")
        self.base_lr = base_lr
        self.total_iterations = total_iterations
        self.policy = policy
        self.warmup_iterations = warmup_iterations

    def __call__(self, iteration):
        lr = POLICIES[self.policy](self.base_lr, iteration, self.total_iterations)
        return warmup(lr, iteration, self.warmup_iterations)

    def __repr__(self):
        return (f"LearningRateSchedule({self.base_lr:g}, {self.total_iterations}, policy={self.policy!r}, "
                f"warmup_iterations={self.warmup_iterations})")
