"""A model, loaders and a run directory small enough to follow every number the training loop computes."""

from pathlib import Path

import numpy as np

from minifcn.layers import Parameter


class PixelLinear:
    """scores (N, K, H, W) = W (K, C) applied to every pixel of x (N, C, H, W), plus b (K,)."""

    def __init__(self, weight, bias):
        self.weight, self.bias = Parameter(weight.copy()), Parameter(bias.copy())
        self.training = True
        self.forward_calls = 0
        self.on_forward = None  # called with the call count, to make something happen mid-run

    def parameters(self):
        yield "weight", self.weight
        yield "bias", self.bias

    def forward(self, x):
        self.forward_calls += 1
        if self.on_forward:
            self.on_forward(self.forward_calls)
        self.x = x
        return np.einsum("kc,nchw->nkhw", self.weight.data, x) + self.bias.data[None, :, None, None]

    def backward(self, dscores):
        self.weight.grad += np.einsum("nkhw,nchw->kc", dscores, self.x)
        self.bias.grad += dscores.sum(axis=(0, 2, 3))

    def forward_backward(self, x, labels, loss_layer):  # as Module's: the training loop's step
        loss = loss_layer.forward(self.forward(x), labels)
        self.backward(loss_layer.backward())
        return loss

    def zero_grad(self):
        for _, parameter in self.parameters():
            parameter.zero_grad()

    def train(self):
        self.training = True
        return self

    def eval(self):
        self.training = False
        return self

    def clear_cache(self):
        self.x = None


class FixedBatches:
    """A loader of the given ``(images (N, C, H, W), labels (N, H, W))`` batches, the same every epoch."""

    def __init__(self, batches, num_classes, ignore_index=255):
        self.batches = batches
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.dataset = None
        self.epochs_set = []

    def set_epoch(self, epoch):
        self.epochs_set.append(epoch)

    def __len__(self):
        return len(self.batches)

    def iterate(self, start=0):
        return iter(self.batches[start:])

    def __iter__(self):
        return self.iterate()


class RecordingRun:
    """Stands in for a RunDirectory: notes what the loop asks it to save, writes nothing."""

    path = Path("run")

    def __init__(self, model=None):
        self.model = model
        self.saved = []  # (name, iteration, copy of the weights)
        self.logs = []

    def save_checkpoint(self, name, state):
        weights = {key: p.data.copy() for key, p in self.model.parameters()} if self.model else None
        self.saved.append((name, state.iteration, weights))

    def write_log(self, rows):
        self.logs.append([dict(row) for row in rows])

    def save_learning_curves(self, rows):
        pass

    def save_predictions(self, dataset, device):
        pass

    def resume_command(self):
        return "resume"
