"""Assignment a13 (generative adversarial networks): the hidden tests reject subtly wrong solutions
(each mutant below is a plausible student mistake) and keep full marks for correct answers written
other valid ways.

Thresholds (fast profile: RingGenerator(latent=8) and RingDiscriminator, MLPs with two hidden layers
of 128 units; 2,000 rounds of train_step on minibatches of 128 points of a ring of 8 Gaussians of
standard deviation 0.05, both players on Adam at learning rate 0.001 with betas (0.5, 0.999), one CPU
thread), measured with the reference solution:

The notebook's own run on its ring (radius 2 around the origin; points from SEED, the generator's
samples from 10,000 + SEED), SEED = 0..4 (11.6 to 14.2 s per run of the whole notebook, one run at a
time): 8 modes covered every time, high-quality fractions
    0.820, 0.785, 0.823, 0.762, 0.728      worst 0.728 against TARGET_QUALITY = 0.5 (a margin of 0.228),
8 modes against TARGET_MODES = 7. The notebook generates its ring, so a student offline runs the same
notebook with the same targets.

The grader's run (`bench/convergence/run.py --only a13-gans`): the student's train_gan trains fresh
players built in the kernel on a ring of 8 Gaussians whose radius (1.5 to 2.5), rotation and centre
(within 1 of the origin) come from the secret seed; the grader loads the trained generator's weights
into `dlcourse.models.gan.RingGenerator`, draws 4,000 samples with its own noise and measures them
with `dlcourse.gan.mode_coverage` (3 standard deviations). Secret seeds 101, 202, ..., 1515 (SEED = 0),
18.9 to 36.4 s per grading of the whole notebook with two gradings side by side: 8 modes covered
every time, high-quality fractions
    0.679 0.799 0.831 0.794 0.724 0.811 0.769 0.748 0.812 0.680 0.765 0.648 0.720 0.734 0.824
worst 0.648, mean 0.756 against _QUALITY = 0.4 (a margin of 0.248); 8 modes against _MODES = 7.

Weights brought from elsewhere earn nothing: a train_gan that trains on the notebook's own ring
whatever points it is given (the mutant `trained_on_the_notebooks_ring` below) brings the grader a
generator of a ring of radius 2 around the origin, whose samples miss the grader's ring.
"""
import pathlib

import pytest

from mutation_helpers import grade_group, run_mutated

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAME = "a13-gans"
SOURCE = ROOT / "solutions" / NAME / f"{NAME}.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("a13")]

# the ring's players and the probe factory are built in the kernel: the tests hand them to the student's code
WELL_FORMED = dict(kernel_only=("players_code",))  # tests/test_assignments.py checks the source with these


# (solution text, wrong replacement, graded cell that must now fail[, a fragment of the failure
# message that shows the mutant's own effect]). Each group runs as one notebook; within a group the
# mutants target different tests and do not reach each other's targets.
LABELS_COVERAGE_NETWORKS = {
    "labels_swapped_in_the_discriminator_loss": (   # real samples scored as fake and fake as real
        "    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()\n",
        "    return F.softplus(real_logits).mean() + F.softplus(-fake_logits).mean()\n",
        "test_losses", "discriminator_loss"),
    "modes_counted_from_every_sample": (   # a mode reached only by poor samples counts as covered
        "    counts = torch.bincount(nearest.indices[good], minlength=len(centers))\n",
        "    counts = torch.bincount(nearest.indices, minlength=len(centers))\n",
        "test_coverage", "modes 0 and 2 are covered"),
    "batch_norm_on_the_discriminators_input_layer": (
        "            nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(0.2),\n",
        "            nn.Conv2d(1, width, 4, 2, 1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2),\n",
        "test_dcgan", "parameters"),
    "each_layers_own_stride_counted": (   # the jump grown before the layer's kernel is added: off by its stride
        "        r += (kernel - 1) * jump\n        jump *= stride\n",
        "        jump *= stride\n        r += (kernel - 1) * jump\n",
        "test_patchgan", "receptive_field"),
    "cycle_loss_in_one_direction": (
        "    return (reconstructed_a - real_a).abs().mean() + (reconstructed_b - real_b).abs().mean()\n",
        "    return (reconstructed_a - real_a).abs().mean()\n",
        "test_translation_losses", "cycle_consistency_loss"),
}
# the saturating loss where the non-saturating one is asked, a coverage threshold on the squared
# distance, a generator without its tanh, and a PatchGAN whose last width keeps stride 2
SATURATING_THRESHOLD_OUTPUTS = {
    "saturating_loss_where_the_nonsaturating_one_is_asked": (
        "    return F.softplus(-fake_logits).mean()\n",
        "    return -F.softplus(fake_logits).mean()\n",
        "test_losses", "generator_loss_nonsaturating"),
    "threshold_on_the_squared_distance": (
        "    good = nearest.values <= threshold * std                           # (n,)\n",
        "    good = nearest.values ** 2 <= threshold * std                      # (n,)\n",
        "test_coverage", "mode_coverage"),
    "generator_without_tanh": (
        "            nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Tanh())\n",
        "            nn.ConvTranspose2d(width, 1, 4, 2, 1))\n",
        "test_dcgan", "differs"),
    "patchgan_last_width_with_stride_2": (
        "            stride = 2 if i < len(widths) - 1 else 1\n",
        "            stride = 2\n",
        "test_patchgan", "PatchGAN"),
}
# a step whose generated batch is not detached for the discriminator's step (its backward pass frees
# the generator's graph, which the generator's step needs), the L1 term between the generated image
# and the input, and a discriminator loss that computes probabilities and overflows where D is certain
DETACH_L1_OVERFLOW = {
    "generated_batch_not_detached": (
        "    d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))\n",
        "    d_loss = discriminator_loss(discriminator(real), discriminator(fake))\n",
        "test_train_step", "backward"),
    "l1_between_the_input_and_the_generated_image": (
        "    return generator_loss_nonsaturating(fake_logits) + l1_weight * (target - generated).abs().mean()\n",
        "    return generator_loss_nonsaturating(fake_logits) + l1_weight * (source - generated).abs().mean()\n",
        "test_translation_losses", "generated == target"),
    "probabilities_that_overflow": (
        "    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()\n",
        "    return -(torch.sigmoid(real_logits).log().mean() + (1 - torch.sigmoid(fake_logits)).log().mean())\n",
        "test_losses", "finite"),
}
# the discriminator left in the mode it was handed (its batch norm then uses running statistics), and
# weights that know another ring: a train_gan that trains on the notebook's own ring whatever it is
# given (the ring players have no batch norm, so the first mutant does not reach the grader's run)
EVAL_MODE_ELSEWHERE = {
    "discriminator_left_in_eval_mode": (
        "    generator.train()\n    discriminator.train()\n",
        "    generator.train()\n",
        "test_train_step", "d_loss"),
    "trained_on_the_notebooks_ring": (
        "    history = {\"d_loss\": [], \"g_loss\": []}\n",
        "    history = {\"d_loss\": [], \"g_loss\": []}\n    data = ring.points\n",
        "test_convergence", "the grader's ring"),
}
GROUPS = {
    # train_step plays with the discriminator's loss: swapped labels fail its check too
    "labels-coverage-networks": (LABELS_COVERAGE_NETWORKS, {"test_train_step"}),
    # the generator's step of train_step and pix2pix's objective use the non-saturating loss: the saturating
    # one fails their checks too
    "saturating-threshold-outputs": (SATURATING_THRESHOLD_OUTPUTS, {"test_train_step", "test_translation_losses"}),
    "detach-l1-overflow": (DETACH_L1_OVERFLOW, set()),
    "eval-mode-elsewhere": (EVAL_MODE_ELSEWHERE, set()),
}


@pytest.mark.mutation
@pytest.mark.parametrize("group", list(GROUPS))
def test_wrong_solutions_fail_their_graded_cell(tmp_path, group):
    grade_group(SOURCE, tmp_path, GROUPS[group])


# Correct answers written other valid ways keep full marks: the losses through binary cross-entropy
# and log-sigmoid, a training step that clears gradients by hand and scores the two batches in its
# own order, mode coverage with Python loops over squared distances, a training loop that keeps its
# losses in two lists, a DCGAN registered layer by layer with functional activations, the receptive
# field walked back from the output, a PatchGAN in a ModuleList, and the translation losses through
# F.l1_loss.
OTHER_WAYS = {
    "losses": (
        """    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
""",
        """    real_part = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake_part = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real_part + fake_part
""",
        None),
    "minimax": (
        """    return -F.softplus(fake_logits).mean()
""",
        """    return F.logsigmoid(-fake_logits).mean()          # log(1 - sigmoid(l)) = logsigmoid(-l)
""",
        None),
    "nonsaturating": (
        """    return F.softplus(-fake_logits).mean()
""",
        """    return -F.logsigmoid(fake_logits).mean()
""",
        None),
    "train_step": (
        """    generator.train()
    discriminator.train()
    fake = generator(z)
    d_loss = discriminator_loss(discriminator(real), discriminator(fake.detach()))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = generator_loss_nonsaturating(discriminator(fake))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}
""",
        """    for net in (generator, discriminator):
        net.train()
    fake = generator(z)
    for p in discriminator.parameters():
        p.grad = None
    loss_d = discriminator_loss(discriminator(real), discriminator(fake.detach()))
    loss_d.backward()
    opt_d.step()
    for p in generator.parameters():
        p.grad = None
    loss_g = generator_loss_nonsaturating(discriminator(fake))
    loss_g.backward()
    opt_g.step()
    return dict(d_loss=float(loss_d), g_loss=float(loss_g))
""",
        None),
    "coverage": (
        """    distance = torch.cdist(samples.double(), centers.double())         # (n, k)
    nearest = distance.min(dim=1)
    good = nearest.values <= threshold * std                           # (n,)
    counts = torch.bincount(nearest.indices[good], minlength=len(centers))
    return int((counts > 0).sum()), float(good.double().mean())
""",
        """    covered, good = set(), 0
    for x, y in samples.tolist():
        d2 = [(x - cx) ** 2 + (y - cy) ** 2 for cx, cy in centers.tolist()]
        best = min(range(len(d2)), key=d2.__getitem__)
        if d2[best] <= (threshold * std) ** 2:
            good += 1
            covered.add(best)
    return len(covered), good / len(samples)
""",
        None),
    "train_gan": (
        """    history = {"d_loss": [], "g_loss": []}
    for _ in range(steps):
        real = data[torch.randint(len(data), (batch_size,), generator=g)].to(device)
        z = torch.randn(batch_size, generator.latent, generator=g).to(device)
        losses = train_step(generator, discriminator, opt_g, opt_d, real, z)
        history["d_loss"].append(losses["d_loss"])
        history["g_loss"].append(losses["g_loss"])
    return history
""",
        """    d_losses, g_losses = [], []
    step = 0
    while step < steps:
        picked = torch.randint(0, data.shape[0], size=(batch_size,), generator=g)
        noise = torch.randn((batch_size, generator.latent), generator=g)
        out = train_step(generator, discriminator, opt_g, opt_d, data[picked].to(device), noise.to(device))
        d_losses.append(out["d_loss"])
        g_losses.append(out["g_loss"])
        step += 1
    return {"g_loss": g_losses, "d_loss": d_losses}
""",
        None),
    "dcgan": (
        """        self.latent = latent
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent, 2 * width, 7, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Tanh())
        ### END SOLUTION

    def forward(self, z):
        ### BEGIN SOLUTION
        return self.net(z.view(len(z), -1, 1, 1))
""",
        """        self.project = nn.ConvTranspose2d(latent, width * 2, kernel_size=7, stride=1, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(width * 2)
        self.up = nn.ConvTranspose2d(width * 2, width, kernel_size=4, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.to_image = nn.ConvTranspose2d(width, 1, kernel_size=4, stride=2, padding=1)
        ### END SOLUTION

    def forward(self, z):
        ### BEGIN SOLUTION
        h = F.relu(self.bn1(self.project(z[:, :, None, None])))
        h = F.relu(self.bn2(self.up(h)))
        return torch.tanh(self.to_image(h))
""",
        None),
    "receptive_field": (
        """    r, jump = 1, 1                # r: the field so far; jump: input pixels between neighbouring units
    for kernel, stride in layers:
        r += (kernel - 1) * jump
        jump *= stride
    return r
""",
        """    r = 1
    for kernel, stride in reversed(list(layers)):
        r = (r - 1) * stride + kernel
    return r
""",
        None),
    "patchgan": (
        """        layers, c = [], in_channels
        for i, w in enumerate(widths):
            stride = 2 if i < len(widths) - 1 else 1
            layers.append(nn.Conv2d(c, w, 4, stride, 1, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(w))
            layers.append(nn.LeakyReLU(0.2))
            c = w
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.net(x)
""",
        """        chans = [in_channels, *widths]
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(len(widths)):
            last = i == len(widths) - 1
            self.convs.append(nn.Conv2d(chans[i], chans[i + 1], kernel_size=4, stride=1 if last else 2, padding=1,
                                        bias=(i == 0)))
            self.norms.append(nn.Identity() if i == 0 else nn.BatchNorm2d(chans[i + 1]))
        self.out = nn.Conv2d(widths[-1], 1, kernel_size=4, padding=1)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        for conv, norm in zip(self.convs, self.norms):
            x = F.leaky_relu(norm(conv(x)), 0.2)
        return self.out(x)
""",
        None),
    "translation": (
        """    return generator_loss_nonsaturating(fake_logits) + l1_weight * (target - generated).abs().mean()
""",
        """    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits)) + \\
        l1_weight * F.l1_loss(generated, target)
""",
        None),
    "cycle": (
        """    return (reconstructed_a - real_a).abs().mean() + (reconstructed_b - real_b).abs().mean()
""",
        """    return F.l1_loss(reconstructed_a, real_a) + F.l1_loss(reconstructed_b, real_b)
""",
        None),
}


@pytest.mark.variants
def test_other_valid_answers_keep_full_marks(tmp_path):
    messages = {}
    failed = run_mutated(SOURCE, tmp_path, OTHER_WAYS, messages, train=True)
    assert not any(failed.values()), {gid: messages[gid] for gid, err in failed.items() if err}
