"""engine/train_loop.py: the loop over built objects, and the order in which it calls its hooks."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from higherhrnet.engine import HookBase, TrainingError, TrainLoop, TrainState


class Recording(HookBase):
    def __init__(self, events):
        self.events = events

    def before_train(self):
        self.events.append("before_train")

    def before_epoch(self):
        self.events.append(f"before_epoch {self.loop.state.epoch}")

    def after_step(self):
        self.events.append(f"step {self.loop.state.epoch}.{self.loop.state.iteration}")

    def after_epoch(self):
        self.events.append(f"after_epoch {self.loop.state.epoch}")

    def after_train(self):
        self.events.append("after_train")

    def close(self):
        self.events.append("close")


class Listener:
    def __init__(self):
        self.epochs = []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)


class _Wrapped(nn.Module):
    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x):
        return [self.network(x)]


def toy(loss_value=None):
    """A one-layer 'network', batches of the training layout, and a loss with one heatmap term."""
    network = nn.Conv2d(3, 2, 1)
    batch = (torch.rand(2, 3, 4, 4), [torch.rand(2, 2, 4, 4)], [torch.ones(2, 4, 4)], [torch.zeros(2, 1, 2, 2)])

    def loss(outputs, heatmaps, masks, joints):
        term = ((outputs[0] - heatmaps[0]) ** 2).mean(dim=(1, 2, 3))
        return {"heatmaps_1/4": term if loss_value is None else term * loss_value}

    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0)
    return network, [batch] * 5, loss, optimizer, scheduler


def test_hooks_are_called_in_order_and_epochs_are_cut_short():
    network, loader, loss, optimizer, scheduler = toy()
    events, listener = [], Listener()
    loop = TrainLoop(_Wrapped(network), loader, loss, optimizer, scheduler, torch.device("cpu"), end_epoch=3,
                     iters_per_epoch=2, parameters=list(network.parameters()), epoch_listeners=[listener],
                     hooks=[Recording(events)], state=TrainState(epoch=1))
    state = loop.run()
    assert events == ["before_train", "before_epoch 1", "step 1.0", "step 1.1", "after_epoch 1",
                      "before_epoch 2", "step 2.0", "step 2.1", "after_epoch 2", "after_train", "close"]
    assert listener.epochs == [1, 2] and state.epoch == 3
    assert set(state.step_losses) == {"heatmaps_1/4", "loss"} and state.step_samples == 2


def test_a_non_finite_loss_stops_with_epoch_and_iteration_and_hooks_are_closed():
    network, loader, loss, optimizer, scheduler = toy(loss_value=float("inf"))
    events = []
    loop = TrainLoop(_Wrapped(network), loader, loss, optimizer, scheduler, torch.device("cpu"), end_epoch=1,
                     iters_per_epoch=5, parameters=list(network.parameters()), hooks=[Recording(events)])
    with pytest.raises(TrainingError, match=r"loss is inf in epoch 1/1, iteration 1/5 \(heatmaps_1/4=inf\)"):
        loop.run()
    assert events == ["before_train", "before_epoch 0", "close"]


def test_a_step_updates_the_weights():
    network, loader, loss, optimizer, scheduler = toy()
    before = network.weight.detach().clone()
    loop = TrainLoop(_Wrapped(network), loader, loss, optimizer, scheduler, torch.device("cpu"), end_epoch=1,
                     iters_per_epoch=1, parameters=list(network.parameters()))
    losses = loop.run_step(loader[0])
    assert losses["loss"] == losses["heatmaps_1/4"] > 0
    assert not torch.equal(before, network.weight)


def test_out_of_memory_is_one_line_with_the_batch_size_hint():
    network, loader, loss, optimizer, scheduler = toy()

    class Greedy(nn.Module):
        def forward(self, x):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
                               "memory: you tried to allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)")

    loop = TrainLoop(Greedy(), loader, loss, optimizer, scheduler, torch.device("cpu"), end_epoch=1,
                     iters_per_epoch=5, parameters=list(network.parameters()))
    with pytest.raises(TrainingError) as info:
        loop.run()
    message = str(info.value)
    assert "\n" not in message and message.startswith("out of memory in epoch 1/1, iteration 1/5, with 2 images per step")
    assert message.endswith("lower TRAIN.IMAGES_PER_GPU (or DATASET.INPUT_SIZE)")
    other = TrainLoop(_Wrapped(nn.Conv2d(5, 2, 1)), loader, loss, optimizer, scheduler, torch.device("cpu"),
                      end_epoch=1, iters_per_epoch=5, parameters=list(network.parameters()))
    with pytest.raises(RuntimeError, match="channels"):               # any other error is left as it is
        other.run()
