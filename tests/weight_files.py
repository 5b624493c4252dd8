"""Helpers shared by the weights tests: random BatchNorm buffers, state-dict comparison and
a width-8 siggraph17 file served by the local HTTP server (``http_root`` in conftest.py)."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import torch

from instacolor.models.generator import ColorGenerator


def randomize_buffers(module: torch.nn.Module, seed: int) -> None:
    """Give BatchNorm buffers non-default values so that a skipped load is detected."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buf in module.named_buffers():
            if name.endswith("num_batches_tracked"):
                buf.fill_(int(torch.randint(1, 10_000, (1,), generator=gen)))
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
            else:
                buf.copy_(torch.randn(buf.shape, generator=gen))


def assert_state_equal(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]):
    """Assert that two state dicts hold the same keys, dtypes and values."""
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype, key
        assert torch.equal(actual[key], value), key


def serve_siggraph8(http_root) -> SimpleNamespace:
    """A width-8 siggraph17-format file on the local server, with its digest."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(17)
        gen = ColorGenerator(8)
    randomize_buffers(gen, 17)
    path = http_root.root / "sig8.pth"
    torch.save(gen.state_dict(), path)
    return SimpleNamespace(
        http=http_root,
        path=path,
        url=f"{http_root.url}/sig8.pth",
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        state=gen.state_dict(),
    )
