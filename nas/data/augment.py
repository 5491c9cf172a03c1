"""Fixed augmented views of a training split, made the way the report made them.

A view is a '+'-joined list of ops from `nas.model.recipe.AUGMENT_OPS` ("blur+hflip").
Every image gets its own random draw, and a view is a pure function of
(images, ops, config, seed): the caller's RNG is left untouched. "mixup" is the one op on the
whole block: it runs after the view's per-image ops and blends each image with another one.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator

import numpy as np
import torch

from nas.data.splits import Progress, transforms_v2
from nas.errors import DataError
from nas.model.recipe import AugmentConfig, view_ops

Transform = Callable[[torch.Tensor], torch.Tensor]

_POLICIES = {   # torchvision's AutoAugmentPolicy names
    "autoaugment_imagenet": "IMAGENET",
    "autoaugment_cifar10": "CIFAR10",
    "autoaugment_svhn": "SVHN",
}
_REPORT_EVERY = 256
MIXUP = "mixup"


def parse_views(config: AugmentConfig) -> tuple[tuple[str, ...], ...]:
    """Split each view into its ops; an unknown op is a DataError naming the view."""
    _check_config(config)
    return view_ops(config, "augment", DataError)


def _check_config(config: AugmentConfig) -> None:
    """Reject settings torchvision would refuse mid-run, with the offending value."""
    low, high = config.blur_sigma
    if config.blur_kernel < 1:
        raise DataError(f"augment.blur_kernel must be >= 1, got {config.blur_kernel}")
    if not 0 < low <= high:
        raise DataError(f"augment.blur_sigma must satisfy 0 < low <= high, got {config.blur_sigma}")
    if config.color_jitter < 0:
        raise DataError(f"augment.color_jitter must be >= 0, got {config.color_jitter}")
    if config.randaugment_ops < 0:
        raise DataError(f"augment.randaugment_ops must be >= 0, got {config.randaugment_ops}")
    if not 0 <= config.randaugment_magnitude <= 30:
        raise DataError(f"augment.randaugment_magnitude must be in 0..30, got {config.randaugment_magnitude}")
    if not config.mixup_alpha > 0:
        raise DataError(f"augment.mixup_alpha must be > 0, got {config.mixup_alpha}")


def _odd_at_most(kernel: int, side: int) -> int:
    """The largest odd kernel <= both `kernel` and the image side (at least 1)."""
    k = min(kernel, side)
    return max(1, k if k % 2 else k - 1)


def _blur(config: AugmentConfig, size: tuple[int, int]) -> Transform:
    """Gaussian blur with a random sigma; the kernel is clamped (odd) to tiny images."""
    height, width = size
    kernel = (_odd_at_most(config.blur_kernel, width), _odd_at_most(config.blur_kernel, height))
    return transforms_v2().GaussianBlur(kernel, sigma=config.blur_sigma)


def _color_jitter(config: AugmentConfig, size: tuple[int, int]) -> Transform:
    """Brightness = contrast = saturation = hue = c, hue clamped to torchvision's 0.5."""
    c = config.color_jitter
    return transforms_v2().ColorJitter(brightness=c, contrast=c, saturation=c, hue=min(c, 0.5))


def _randaugment(config: AugmentConfig, size: tuple[int, int]) -> Transform:
    """RandAugment (Cubuk et al. 2020) with the configured op count and magnitude."""
    return transforms_v2().RandAugment(num_ops=config.randaugment_ops,
                                       magnitude=config.randaugment_magnitude)


def _autoaugment(op: str) -> Callable[[AugmentConfig, tuple[int, int]], Transform]:
    """A factory for one of torchvision's AutoAugment policies (Cubuk et al. 2019)."""
    def make(config: AugmentConfig, size: tuple[int, int]) -> Transform:
        v2 = transforms_v2()
        return v2.AutoAugment(v2.AutoAugmentPolicy[_POLICIES[op]])
    return make


_OPS: dict[str, Callable[[AugmentConfig, tuple[int, int]], Transform]] = {
    "hflip": lambda config, size: transforms_v2().RandomHorizontalFlip(p=0.5),
    "blur": _blur,
    "color_jitter": _color_jitter,
    "randaugment": _randaugment,
    **{op: _autoaugment(op) for op in _POLICIES},
}


def make_transform(ops: tuple[str, ...], config: AugmentConfig, size: tuple[int, int]) -> Transform:
    """One per-image transform applying `ops` in order (all but "mixup"), for uint8 (3, H, W)."""
    v2 = transforms_v2()
    return v2.Compose([_OPS[op](config, size) for op in ops if op != MIXUP] or [v2.Identity()])


def mixup(images: torch.Tensor, alpha: float, seed: int) -> torch.Tensor:
    """Each image blended with a random partner of the block: lam * own + (1 - lam) * partner,
    lam = max(b, 1 - b) with b ~ Beta(alpha, alpha), so every image keeps the larger weight
    (and its label). uint8 in, uint8 out (rounded)."""
    rng = np.random.default_rng(seed)
    partner = torch.from_numpy(rng.permutation(len(images)))
    draw = rng.beta(alpha, alpha, size=len(images))
    lam = torch.from_numpy(np.maximum(draw, 1 - draw)).float().view(-1, 1, 1, 1)
    blend = lam * images.float() + (1 - lam) * images[partner].float()
    return blend.round().clamp(0, 255).to(torch.uint8)


def view_seed(seed: int, index: int, view: str) -> int:
    """A seed per view, so two identical view strings still draw differently."""
    digest = hashlib.sha256(f"{seed}/{index}/{view}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Per-image ops are too small for intra-op threads: on a busy CPU they are 5-15x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def augment_images(
    images: torch.Tensor,
    transform: Transform,
    seed: int,
    what: str = "augment",
    progress: Progress | None = None,
) -> torch.Tensor:
    """Apply `transform` to each image separately (own random draw), reproducibly."""
    out = torch.empty_like(images)
    total = images.shape[0]
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(seed)
        for i in range(total):
            out[i] = transform(images[i])
            if progress is not None and ((i + 1) % _REPORT_EVERY == 0 or i + 1 == total):
                progress(what, i + 1, total)
    return out


def augment_views(
    images: torch.Tensor,
    views: tuple[tuple[str, ...], ...],
    config: AugmentConfig,
    seed: int,
    progress: Progress | None = None,
) -> torch.Tensor:
    """All augmented blocks stacked: (len(views) * N, 3, H, W) uint8, view by view."""
    size = (images.shape[-2], images.shape[-1])
    blocks = []
    for index, ops in enumerate(views):
        name = "+".join(ops)
        transform = make_transform(ops, config, size)
        block = augment_images(images, transform, view_seed(seed, index, name), f"augment {name}",
                               progress)
        if MIXUP in ops:
            block = mixup(block, config.mixup_alpha, view_seed(seed, index, f"{name}/{MIXUP}"))
        blocks.append(block)
    return torch.cat(blocks) if blocks else images[:0].clone()
