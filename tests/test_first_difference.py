"""autograder.testkit.first_difference: where a student's model first differs from the reference
holding its weights, in the student's module names. Here the "student's model" is a local module
behind a stand-in for the kernel handle (its errors arrive as StudentCodeError, as the kernel's do);
the grading runs in tests/test_aNN.py check the same messages through the real channel."""
import torch
from torch import nn

from autograder.remote import StudentCodeError
from autograder.testkit import first_difference, layer_pairs


class Handle:
    """What a hidden test holds for a kernel module: calls, get_submodule, named_children."""

    def __init__(self, module):
        self.module = module

    def get_submodule(self, name):
        return Handle(self.module.get_submodule(name))

    def named_children(self):
        return [(n, Handle(m)) for n, m in self.module.named_children()]

    def named_parameters(self):   # tensors come back as plain copies
        return [(n, t.detach().clone()) for n, t in self.module.named_parameters()]

    def named_buffers(self):
        return [(n, t.clone()) for n, t in self.module.named_buffers()]

    def __call__(self, *args):
        try:
            with torch.no_grad():
                return self.module(*args)
        except Exception as e:   # noqa: BLE001 - as the channel reports a kernel error
            raise StudentCodeError.of("call", {"type": type(e).__name__, "message": str(e)}) from None


class Student:
    def isinstance(self, obj, name):
        return name in [f"{c.__module__}.{c.__qualname__}" for c in type(obj.module).__mro__]

    def trace(self, handle, x, names=()):
        order = []
        hooks = [handle.module.get_submodule(n).register_forward_hook(lambda *a, n=n: order.append(n)) for n in names]
        try:
            out = handle(x)
        finally:
            for h in hooks:
                h.remove()
        return out, {n: (1,) for n in dict.fromkeys(order)}


def pairs_of(net):
    layers = [n for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return list(zip(layers, layers))


def reference():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)).double().eval()


def student_like(ref, **changes):
    net = reference()
    net.load_state_dict(ref.state_dict())
    for index, module in changes.items():
        net[int(index[1:])] = module
    return net.double().eval()


X = torch.randn(1, 2, 8, 8, dtype=torch.float64)


def test_a_layer_that_computes_something_else_is_named():
    ref = reference()
    net = student_like(ref, _0=nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"))
    net[0].load_state_dict(ref[0].state_dict())
    d = first_difference(Handle(net), ref, X, pairs_of(ref), student=Student())
    assert (d.kind, d.mine) == ("layer", "0")
    assert "is the layer your model[0]" in d.sentence()


def test_a_pooling_of_another_kind_names_the_first_layer_it_feeds():
    ref = reference()
    net = student_like(ref, _2=nn.AvgPool2d(2))
    d = first_difference(Handle(net), ref, X, pairs_of(ref), student=Student())
    assert (d.kind, d.layer) == ("sequence", "3")
    assert "whose output differs is your model[3]" in d.sentence() and "what reaches it differs" in d.sentence()


class Block(nn.Module):
    def __init__(self, concat_order=(0, 1)):
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 3, 1), nn.Conv2d(2, 5, 3, padding=1)
        self.order = concat_order

    def forward(self, x):
        parts = [self.a(x), self.b(x)]
        return torch.cat([parts[i] for i in self.order], 1)


class Net(nn.Module):
    def __init__(self, concat_order=(0, 1), relu=True):
        super().__init__()
        self.stem = nn.Conv2d(2, 2, 3, padding=1)
        self.parts = nn.ModuleDict({"one": Block(concat_order)})
        self.head = nn.Conv2d(8, 1, 1)
        self.relu = relu

    def forward(self, x):
        x = self.stem(x)
        x = self.parts["one"](torch.relu(x) if self.relu else x)
        return self.head(x)


def test_a_block_whose_parts_agree_is_named_inside_a_container_without_forward():
    torch.manual_seed(1)
    ref = Net().double().eval()
    net = Net(concat_order=(1, 0)).double().eval()
    net.load_state_dict(ref.state_dict())
    pairs = [(n, n) for n in ("stem", "parts.one.a", "parts.one.b", "head")]
    d = first_difference(Handle(net), ref, X, pairs, student=Student())
    assert (d.kind, d.mine, d.theirs) == ("block", "parts.one", "parts.one")
    assert d.got.shape == d.want.shape and not torch.allclose(d.got, d.want)
    assert "is parts.one: each of its layers computes what it should" in d.sentence()


def test_every_part_agrees_the_forward_differs():
    torch.manual_seed(1)
    ref = Net().double().eval()
    net = Net(relu=False).double().eval()
    net.load_state_dict(ref.state_dict())
    d = first_difference(Handle(net), ref, X, layer_pairs(Student(), Handle(net), X, ref, lambda n: n), student=Student())
    assert d.kind == "model"
    assert d.sentence(whole="your Net").startswith("each part of your Net computes what it should")


def test_out_of_time_gives_nothing():
    ref = reference()
    net = student_like(ref, _2=nn.AvgPool2d(2))
    assert first_difference(Handle(net), ref, X, pairs_of(ref), student=Student(), budget=-1.0) is None
