"""Image-to-image translation (chapter 13): paired and unpaired image sets made from chapter 12's
shapes scenes, pix2pix's U-Net generator, and one training step each of pix2pix and CycleGAN.

- Paired (pix2pix, Isola et al. 2017): every input comes with its target. Here the input is a
  scene's label map (one flat colour per class on black, as the label maps of pix2pix's
  "labels -> photo" sets) and the target is the same scene "photographed": each object filled
  with its class's colour in a palette, lit from above (brighter at its top), on the scene's
  noisy dark background.
- Unpaired (CycleGAN, Zhu et al. 2017): two sets of images, one per domain, with no pairs: scenes
  in the "warm" palette and *other* scenes in the "cool" one. A translator must learn to recolour
  each shape without ever being shown a scene in both palettes.

Images are (N, 3, H, W) float32 in [-1, 1], the range of the generators' tanh output.

The generator is chapter 12's U-Net (`dlcourse.models.segmentation.UNet`: ConvBlocks, 2 x 2
max pooling, 2 x 2 transposed convolutions, skips by concatenation) with three output channels
and a tanh. pix2pix's own generator is a U-Net too, with other blocks (4 x 4 convolutions of stride
2 instead of pooling, eight levels for 256 x 256 images, dropout as its source of noise); CycleGAN's
is a ResNet-style network (Johnson et al. 2016). Both departures keep the idea (an encoder-decoder
with the input's resolution at its output) and make the networks train in seconds on 32 x 32 scenes.

The adversarial terms use the log loss of `dlcourse.gan` throughout. pix2pix uses it too, and
divides D's objective by 2 to slow D down relative to G; with Adam, which divides each gradient by
its running scale, halving a loss changes almost nothing, so it is left out here. CycleGAN's paper
replaces the log loss by a least-squares loss (Mao et al. 2017) for stability: a departure,
commented where it happens.
"""
from __future__ import annotations

import torch
from torch import nn

from dlcourse.datasets.shapes import ShapesDataset, shapes_segmentation
from dlcourse.gan import (cycle_consistency_loss, discriminator_loss, discriminator_step, generator_loss_nonsaturating,
                          identity_loss, pix2pix_generator_loss)
from dlcourse.models import segmentation as S

__all__ = ["LABEL_COLOURS", "PALETTES", "cfgs", "shapes_scenes", "label_map", "photograph", "paired_shapes", "unpaired_shapes",
           "Pix2PixGenerator", "pix2pix_generator", "pix2pix_step", "cyclegan_step", "to_image", "palette_accuracy"]

# RGB in [0, 1] per class: background, square, circle, triangle
LABEL_COLOURS = ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
PALETTES = {
    "warm": ((0.95, 0.35, 0.15), (0.95, 0.80, 0.20), (0.85, 0.30, 0.65)),
    "cool": ((0.15, 0.45, 0.95), (0.20, 0.85, 0.70), (0.55, 0.35, 0.95)),
}


def shapes_scenes(n: int = 256, size: int = 32, seed: int = 0) -> ShapesDataset:
    """The scenes behind both image sets: chapter 12's shapes (with masks), objects 1/5 to 1/2 of the side."""
    return shapes_segmentation(n, size=size, max_objects=3, min_size=max(6, size // 5), max_size=size // 2, seed=seed)


def label_map(scenes: ShapesDataset) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1]: each pixel the flat colour of its class (`LABEL_COLOURS`)."""
    colours = torch.tensor(LABEL_COLOURS)                              # (classes, 3)
    return (colours[scenes.semantic_masks()].permute(0, 3, 1, 2) * 2 - 1).contiguous()


def photograph(scenes: ShapesDataset, palette: str = "warm", light: float = 0.45) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1]: the scenes' own background, each object filled with its class's
    colour in `PALETTES[palette]`, times a brightness falling linearly from 1 at the object's top
    row to 1 - light at its bottom row."""
    colours = torch.tensor(PALETTES[palette])                          # (3 classes, 3)
    out = scenes.images.clone()
    rows = torch.arange(out.shape[-2], dtype=torch.float32)[:, None]   # (H, 1)
    for img, boxes, labels, masks in zip(out, scenes.boxes, scenes.labels, scenes.masks):
        for (x0, y0, x1, y1), label, mask in zip(boxes.tolist(), labels.tolist(), masks):
            height = max(y1 - y0 - 1, 1)
            shade = (1 - light * (rows - y0) / height).clamp(1 - light, 1).expand_as(mask)   # (H, W)
            img[:, mask] = colours[label - 1][:, None] * shade[mask]
    return out * 2 - 1


def paired_shapes(n: int = 256, size: int = 32, palette: str = "warm", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(label maps, photographs) of the same n scenes: pair i is scene i as input and as target."""
    scenes = shapes_scenes(n, size, seed)
    return label_map(scenes), photograph(scenes, palette)


def unpaired_shapes(n: int = 256, size: int = 32, domains: tuple[str, str] = ("warm", "cool"),
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Photographs of n scenes in the first palette and of n *other* scenes (another seed) in the
    second: two domains and no pairs."""
    return photograph(shapes_scenes(n, size, seed), domains[0]), photograph(shapes_scenes(n, size, seed + 1), domains[1])


def to_image(x: torch.Tensor) -> torch.Tensor:
    """(3, H, W) in [-1, 1] -> (H, W, 3) in [0, 1], for imshow."""
    return ((x.detach().float().cpu() + 1) / 2).clamp(0, 1).permute(1, 2, 0)


# U-Net stages (width, convolutions) for the generators: chapter 12's small U-Net, and a
# shallower one (stride 4, one convolution per level) that the book's pages train in seconds
cfgs = {"unet_small": S.cfgs["unet_small"], "tiny": ((8, 1), (16, 1), (32, 1))}


def palette_accuracy(images: torch.Tensor, scenes: ShapesDataset, palette: str) -> float:
    """Fraction of the object pixels of `images` (N, 3, H, W in [-1, 1], one per scene) whose colour
    points most nearly in the direction of their own class's colour in `PALETTES[palette]` (largest
    cosine similarity of the RGB vectors, so that the lighting, which scales a colour, does not count)."""
    colours = torch.nn.functional.normalize(torch.tensor(PALETTES[palette]), dim=1)    # (3, 3)
    rgb = ((images.detach().float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)            # (N, H, W, 3)
    classes = scenes.semantic_masks()                                                     # (N, H, W)
    objects = classes > 0
    guess = (rgb[objects] @ colours.T).argmax(dim=1) + 1
    return float((guess == classes[objects]).double().mean())


class Pix2PixGenerator(nn.Module):
    """(N, C_in, H, W) -> (N, C_out, H, W) in (-1, 1): chapter 12's U-Net with C_out output
    channels in place of class scores, followed by tanh (DCGAN's output, as pix2pix's)."""

    def __init__(self, stages=S.cfgs["unet_small"], in_channels: int = 3, out_channels: int = 3):
        super().__init__()
        self.unet = S.UNet(stages, num_classes=out_channels, in_channels=in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.unet(x))


def pix2pix_generator(cfg: str = "unet_small", in_channels: int = 3, out_channels: int = 3) -> Pix2PixGenerator:
    """A generator from `cfgs`: "unet_small" is chapter 12's (8, 16, 32 channels, bottom 64: stride 8),
    "tiny" the one chapter 13's pages train (8, 16 channels, bottom 32: stride 4)."""
    return Pix2PixGenerator(cfgs[cfg], in_channels, out_channels)


def pix2pix_step(generator: nn.Module, discriminator: nn.Module, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor,
                 l1_weight: float = 100.0) -> dict[str, float]:
    """One step of pix2pix: D (a conditional PatchGAN on input and image concatenated along the
    channels) learns to tell (input, target) from (input, G(input)) patch by patch; then G
    minimises the non-saturating adversarial loss plus l1_weight * mean |target - G(input)|
    (`dlcourse.gan.pix2pix_generator_loss`; lambda = 100 in the paper). Returns D's loss, G's
    adversarial term and the L1 distance, before the steps."""
    generator.train()
    discriminator.train()
    fake = generator(inputs)
    # D judges pairs: (input, target) as real, (input, G(input)) as fake (detached: G is not changed here)
    d_loss = discriminator_step(discriminator, opt_d, torch.cat([inputs, targets], 1), torch.cat([inputs, fake], 1))
    fake_logits = discriminator(torch.cat([inputs, fake], 1))
    g_loss = pix2pix_generator_loss(fake_logits, fake, targets, l1_weight)
    opt_g.zero_grad()
    g_loss.backward()                            # D's gradients from this call are discarded (zeroed next step)
    opt_g.step()
    return {"d_loss": d_loss.item(), "g_adv": generator_loss_nonsaturating(fake_logits).item(),
            "l1": (targets - fake).abs().mean().item()}


def cyclegan_step(g_ab: nn.Module, g_ba: nn.Module, d_a: nn.Module, d_b: nn.Module, opt_g: torch.optim.Optimizer,
                  opt_d: torch.optim.Optimizer, real_a: torch.Tensor, real_b: torch.Tensor,
                  cycle_weight: float = 10.0, identity_weight: float = 5.0) -> dict[str, float]:
    """One step of CycleGAN. G = g_ab: A -> B and F = g_ba: B -> A share `opt_g`; D_A and D_B
    (unconditional: they see one image, never a pair) share `opt_d`.

    Generators: the adversarial losses of G(a) against D_B and F(b) against D_A, plus
    cycle_weight * (mean |F(G(a)) - a| + mean |G(F(b)) - b|) (lambda = 10 in the paper), plus
    identity_weight * (mean |G(b) - b| + mean |F(a) - a|) (0.5 lambda where the paper uses it).
    Then each discriminator on its domain's real images against the generated ones (detached).
    The paper's adversarial loss is least squares and its D steps use a history of 50 generated
    images; here both are the plain log loss on the current batch. Returns the terms before the steps."""
    for m in (g_ab, g_ba, d_a, d_b):
        m.train()
    fake_b, fake_a = g_ab(real_a), g_ba(real_b)
    adv = generator_loss_nonsaturating(d_b(fake_b)) + generator_loss_nonsaturating(d_a(fake_a))
    cycle = cycle_consistency_loss(real_a, g_ba(fake_b), real_b, g_ab(fake_a))
    ident = identity_loss(real_a, g_ba(real_a), real_b, g_ab(real_b)) if identity_weight else torch.zeros(())
    g_loss = adv + cycle_weight * cycle + identity_weight * ident
    opt_g.zero_grad()
    g_loss.backward()                            # D's gradients from this pass are zeroed before D steps
    opt_g.step()
    d_loss = (discriminator_loss(d_a(real_a), d_a(fake_a.detach())) +
              discriminator_loss(d_b(real_b), d_b(fake_b.detach())))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    return {"g_adv": adv.item(), "cycle": cycle.item(), "identity": ident.item(), "d_loss": d_loss.item()}
