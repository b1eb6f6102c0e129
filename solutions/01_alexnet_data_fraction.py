# %% [markdown]
# # 01 — How much does ImageNet pre-training help when labels are scarce?
#
# A network trained on ImageNet's 1.2 million photos has already learned edges, textures and
# object parts. **Does starting from those weights help on a new task, and by how much does it
# depend on how much labelled data we have?**
#
# The experiment: fine-tune an ImageNet-pretrained AlexNet on 10 %, 20 % and 50 % of the
# CIFAR-10 training set, and train *the same network from random weights* on the same images
# with the same budget (optimizer, epochs, batch size). Compare test accuracy and loss as the
# amount of data grows. You write every step of it: loading the network and its preprocessing,
# drawing the subsets, the new head, the training epoch and the evaluation pass.
#
# | setting (the COMP5541 notebook, part A) | value |
# |---|---|
# | optimizer | SGD, lr 1e-3, momentum 0.9 |
# | batch size / epochs | 64 / 10 |
# | input | 32 px CIFAR images resized to 224 px |
# | augmentation | random crop (padding 4) + horizontal flip |
#
# The reference run (one seed, GPU) reported test accuracies of 82.99 / 87.18 / 89.68 %
# pretrained against 12.89 / 37.41 / 51.06 % from scratch. It normalized the images with
# CIFAR-10's own mean and std; here both initialisations use the normalization the pretrained
# weights were trained with, which the weights themselves tell us (section 1). On a GPU that computes bfloat16 natively (Ampere or newer) the kit trains in bfloat16 mixed precision, where the reference trained in float32: `full` numbers may differ from it by that too.
#
# **What you should see.** In every profile with real weights, pretrained above scratch at
# every fraction *with the same training budget*, with the largest gap at the smallest
# fraction; section 6 then shows how much of that gap is only the budget.
# `offline` (EfficientNet-Lite0 on scikit-learn's handwritten digits, three seeds, CPU, 4 epochs):
# about 61 % pretrained against 26 % scratch at 10 %, 97 % against 87 % at 50 %; with 2× the
# epochs, scratch at 10 % reaches about 70 %: much of the gap at 10 % is the budget.
# `full` (the settings above): close to the reference numbers, within a few points.
# `smoke` runs on synthetic stand-ins and random "pretrained" weights: its numbers only show
# that the code runs. The notebook prints an estimate of its run time before training.

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
budget_factor = None  # scratch's longer budget (section 6): this many times num_epochs, smallest fraction
image_size = None
device = None        # None: CUDA if available, else CPU

# %%
import math
import time

import numpy as np
import torch
import torchvision
from IPython.display import Markdown, display
from torch import nn
from torch.utils.data import Subset

import course_utils as cu

check = cu.selfcheck.data_fraction  # this notebook's self-checks

NOTEBOOK = "01_alexnet_data_fraction"
P = cu.load_parameters(NOTEBOOK, globals())  # the parameters cell's knobs, None ones from the profile
session = cu.start_session(P, backbones=[P.backbone])  # checks (or, in smoke runs, fakes) the weights
print(P)
print("device:", session.device, "| data:", session.data_label)


# %% [markdown]
# ## 1. An ImageNet network and its preprocessing
#
# torchvision describes every set of pretrained weights with an enum member: where the file
# lives, the ImageNet class names, and the preprocessing the network was trained with.
# `torchvision.models.get_model_weights(name)` gives a network's enum, its `.DEFAULT` member
# is the recommended set, and `torchvision.models.get_model(name, weights=...)` builds the
# network with those weights (or random ones, with `weights=None`).
#
# ### Exercise 1 — load a network with its weights enum
#
# Write `load_imagenet_model(name, pretrained)` that returns a pair `(model, preprocess)`:
#
# * `model`: the network `name` with its 1000-class ImageNet head, with the `DEFAULT` ImageNet
#   weights when `pretrained` is true and random weights otherwise;
# * `preprocess`: `weights.transforms()` of the `DEFAULT` weights, **in both cases**, so that the
#   pretrained and the scratch network see exactly the same inputs.
#
# (The course registers EfficientNet-Lite, the `offline` profile's backbone, with torchvision
# too, so the same two calls work for every network here.)

# %% course={"exercise": "load_imagenet_model"} tags=["exercise"]
def load_imagenet_model(name, pretrained):
    ### BEGIN SOLUTION
    default = torchvision.models.get_model_weights(name).DEFAULT
    model = torchvision.models.get_model(name, weights=default if pretrained else None)
    return model, default.transforms()
    ### END SOLUTION


# %% tags=["self-check"]
check.load_imagenet_model(load_imagenet_model, P.backbone)

# %% [markdown]
# What the preprocessing does to an image: resize, crop the centre, scale the pixels to
# [0, 1] and normalize them with the mean and std of the images the weights learned from.
# We train at `image_size` pixels (smaller than ImageNet's, for speed), so the loaders below
# do their own resizing and keep only its normalization.

# %%
_, preprocess = load_imagenet_model(P.backbone, pretrained=False)
print(preprocess)
photo = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)  # any uint8 image, channels first
ready = preprocess(photo)
print(f"{tuple(photo.shape)} uint8 -> {tuple(ready.shape)} float, mean {ready.mean():.2f}")
mean, std = tuple(preprocess.mean), tuple(preprocess.std)

# %% [markdown]
# ## 2. The data

# %%
train_set, test_set = session.classification_data()
class_names = list(train_set.classes)
print(f"training images: {len(train_set)}, test images: {len(test_set)}, classes: {len(class_names)}")
print("images per class (train):", cu.class_counts(train_set))

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
# ### Exercise 2 — a stratified subset
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
# ### Exercise 3 — a new head for a pretrained network
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

# %% [markdown]
# Your two functions together make the network of every run (the course's table of
# architectures says where each head sits):

# %%
head_path = cu.models.get_architecture(P.backbone).head


def make_model(pretrained: bool) -> nn.Module:
    """The backbone with ImageNet weights (or random ones) and a new head for our classes."""
    model, _ = load_imagenet_model(P.backbone, pretrained)
    return replace_head(model, head_path, len(class_names))


model = make_model(pretrained=True)
print(f"{P.backbone}: head at {head_path!r} -> {model.get_submodule(head_path)}")
print(f"parameters: {cu.count_parameters(model):,}, all trainable")


# %% [markdown]
# ## 3. Training, step by step
#
# ### Exercise 4 — one training epoch
#
# Write `train_one_epoch(model, loader, loss_fn, optimizer, device)`. Put the model in training
# mode, then for every batch `(images, labels)` of the loader: move both to `device`, compute the
# logits and the loss, clear the old gradients, back-propagate, and take an optimizer step.
# Return `(mean_loss, accuracy)` over the epoch as Python floats:
#
# * `mean_loss`: the loss per image, so weight each batch's (mean) loss by its number of images —
#   the last batch can be smaller;
# * `accuracy`: the share of training images whose largest logit was their label, counted on the
#   way (the *running* accuracy, computed with the weights as they were at each batch).

# %% course={"exercise": "train_one_epoch"} tags=["exercise"]
def train_one_epoch(model, loader, loss_fn, optimizer, device):
    ### BEGIN SOLUTION
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        loss = loss_fn(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum().item()
        seen += len(labels)
    return total_loss / seen, correct / seen
    ### END SOLUTION


# %% tags=["self-check"]
check.train_one_epoch(train_one_epoch)


# %% [markdown]
# ### Exercise 5 — an evaluation pass
#
# Write `evaluate(model, loader, loss_fn, device)` returning `(mean_loss, accuracy)` in the same
# way, but in **evaluation mode** (`model.eval()`: dropout off, BatchNorm on its stored
# statistics) and inside `torch.no_grad()` (no graph is recorded: faster, and less memory).

# %% course={"exercise": "evaluate"} tags=["exercise"]
def evaluate(model, loader, loss_fn, device):
    ### BEGIN SOLUTION
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with torch.no_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            logits = model(images)
            total_loss += loss_fn(logits, labels).item() * len(labels)
            correct += (logits.argmax(dim=1) == labels).sum().item()
            seen += len(labels)
    return total_loss / seen, correct / seen
    ### END SOLUTION


# %% tags=["self-check"]
check.evaluate(evaluate)

# %% [markdown]
# ## 4. One experiment
#
# One run = one fraction, one initialisation, one seed, built from your five functions. Both
# initialisations get exactly the same images, augmentation, optimizer and number of updates;
# only the starting weights differ. Every parameter is trained, so the optimizer gets
# `model.parameters()`.

# %%
test_loader = cu.make_loader(test_set, batch_size=256, image_size=P.image_size, mean=mean, std=std)
loss_fn = nn.CrossEntropyLoss()


def run_one(fraction: float, pretrained: bool, seed: int, verbose: bool = True, num_epochs: int | None = None):
    """Train on a stratified `fraction` of the training set for `num_epochs` (default: P.num_epochs);
    returns (row, history, model)."""
    num_epochs = num_epochs or P.num_epochs
    cu.seed_everything(seed)
    subset = Subset(train_set, stratified_subset_indices(targets, fraction, seed).tolist())
    train_loader = cu.make_loader(subset, batch_size=P.batch_size, shuffle=True, augment=True,
                                  image_size=P.image_size, mean=mean, std=std)
    model = make_model(pretrained).to(session.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=P.lr, momentum=P.momentum)
    init = "pretrained" if pretrained else "scratch"
    records = []
    for epoch in cu.train.progress(range(1, num_epochs + 1), desc=f"{fraction:.0%} {init} seed {seed}",
                                   disable=not verbose):
        started = time.perf_counter()
        train_loss, train_acc = train_one_epoch(model, train_loader, loss_fn, optimizer, session.device)
        records.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                        "seconds": time.perf_counter() - started})
    test_loss, test_acc = evaluate(model, test_loader, loss_fn, session.device)
    row = {"fraction": fraction, "init": init, "seed": seed, "train_images": len(subset),
           "budget": "short" if num_epochs == P.num_epochs else "long", "num_epochs": num_epochs,
           "updates": num_epochs * len(train_loader), "test_acc": test_acc, "test_loss": test_loss,
           # A run that ends above chance (every class equally likely: ln 10) has learned nothing.
           "final_train_loss": records[-1]["train_loss"], "chance_loss": math.log(len(class_names)),
           "seconds_per_epoch": float(np.mean([r["seconds"] for r in records]))}
    return row, cu.History(records), model


# %% tags=["nbval-ignore-output"]
rows, histories, kept = [], {}, {}
for fraction in P.fractions:
    for pretrained in (True, False):
        for seed in P.seeds:
            row, history, model = run_one(fraction, pretrained, seed)
            rows.append(row)
            histories.setdefault((fraction, row["init"]), []).append(history)
            if fraction == P.fractions[0] and seed == P.seeds[0]:
                kept[row["init"]] = model  # looked at closely in section 7

# %% [markdown]
# ## 5. Results
#
# Each configuration ran once per seed; the table shows mean ± standard deviation over seeds
# (a single seed shows only the mean).

# %% tags=["nbval-ignore-output"]
summary = cu.results.aggregate(rows, by=["fraction", "init"], metrics=["test_acc", "test_loss"])
cu.results.table([{"fraction": f"{r['fraction']:.0%}", "initialisation": r["init"], "runs": r["n"],
                   "test accuracy (%)": cu.results.mean_std(r, "test_acc"),
                   "test loss": cu.results.mean_std(r, "test_loss", 1, 4)} for r in summary])

# %% tags=["nbval-ignore-output"]
accuracy = {(r["fraction"], r["init"]): 100 * r["test_acc_mean"] for r in summary}
gaps = [{"fraction": f, "pretrained": accuracy[f, "pretrained"], "scratch": accuracy[f, "scratch"],
         "difference": accuracy[f, "pretrained"] - accuracy[f, "scratch"]} for f in P.fractions]
cu.results.table([{"fraction": f"{g['fraction']:.0%}", "pretrained (%)": round(g["pretrained"], 2),
                   "scratch (%)": round(g["scratch"], 2), "difference (points)": round(g["difference"], 2)}
                  for g in gaps])

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
# ## 6. How much of the gap is the training budget?
#
# Both initialisations above had the same budget: `num_epochs` epochs, the same number of
# updates. A network that starts from random weights needs far more updates than one that
# starts from ImageNet features, so a short budget favours pretraining twice: better features
# *and* a head start. Is the gap above about the features, or only about the budget? Train
# from scratch again on the smallest fraction, with `budget_factor` times as many epochs.

# %% tags=["nbval-ignore-output"]
long_epochs = P.budget_factor * P.num_epochs
budget_rows = []
for seed in P.seeds:
    row, history, _ = run_one(P.fractions[0], pretrained=False, seed=seed, num_epochs=long_epochs)
    budget_rows.append(row)
smallest = [r for r in rows if r["fraction"] == P.fractions[0]] + budget_rows
budget_summary = cu.results.aggregate(smallest, by=["init", "num_epochs", "updates"], metrics=["test_acc"])
cu.results.table([{"initialisation": r["init"], "epochs": r["num_epochs"], "updates": r["updates"], "runs": r["n"],
                   f"test accuracy at {P.fractions[0]:.0%} (%)": cu.results.mean_std(r, "test_acc")}
                  for r in budget_summary])

# %% tags=["nbval-ignore-output"]
by_budget = {(r["init"], r["num_epochs"]): 100 * r["test_acc_mean"] for r in budget_summary}
short_gap = by_budget["pretrained", P.num_epochs] - by_budget["scratch", P.num_epochs]
closed = by_budget["scratch", long_epochs] - by_budget["scratch", P.num_epochs]
remaining = short_gap - closed
budget_note = (f"With {P.budget_factor}x the epochs, training from scratch on {P.fractions[0]:.0%} of the data goes "
               f"from {by_budget['scratch', P.num_epochs]:.1f} to {by_budget['scratch', long_epochs]:.1f} % "
               f"({closed:+.1f} points), against a {short_gap:.1f}-point gap at the short budget: ")
budget_note += (f"pretrained weights with the short budget still lead by {remaining:.1f} points, so "
                f"{max(closed, 0) / short_gap:.0%} of the gap was the budget." if remaining > 0 else
                f"it passes pretrained weights trained with the short budget by {-remaining:.1f} points, so at this "
                f"fraction the whole gap was the budget, not the features.")
display(Markdown(budget_note))

# %% [markdown]
# Pretraining buys two things: features that fit the new task, and a short way to a good
# model. When labels are scarce *and* compute is short, both count; when a network from
# scratch can be trained long enough on data that is easy for it (a few thousand upsampled
# 8×8 digits), the second one fades. On CIFAR-10 the reference's scratch AlexNet was still 70
# points behind after ten epochs at 10 %; whether a longer budget closes that gap too is what
# the `full` profile's run of this section measures.

# %% [markdown]
# ## 7. Where the errors are
#
# The two networks of the smallest fraction (first seed), pretrained and from scratch, on the
# whole test set: which classes they confuse, how accurate they are per class, and some of the
# images the pretrained one got wrong.

# %% tags=["nbval-ignore-output"]
# cu.train.predict is the library's version of your evaluation pass, keeping the predictions
# (and the first 16 misclassified images) instead of averaging them.
seen = {init: cu.train.predict(model, test_loader, wrong_images=16) for init, model in kept.items()}
fig, axes = plt.subplots(1, 2, figsize=(12, 5))
for ax, (init, (labels, predicted, _)) in zip(axes, seen.items()):
    cu.plots.confusion_matrix(labels, predicted, class_names, ax=ax, title=f"{init}, {P.fractions[0]:.0%} of the data")
fig.tight_layout()
figure_paths.append(cu.plots.save_figure(fig, "01_confusion_matrices"))

# %% tags=["nbval-ignore-output"]
display(cu.results.per_class_accuracy(seen, class_names))

# %% tags=["nbval-ignore-output"]
labels, predicted, wrong_images = seen["pretrained"]
wrong = torch.nonzero(predicted != labels).flatten()[:16]
if len(wrong):
    fig = cu.plots.show_images(wrong_images, labels[wrong], class_names, mean, std, predicted=predicted[wrong],
                               title="Test images the pretrained network got wrong (true → predicted)")
    figure_paths.append(cu.plots.save_figure(fig, "01_misclassified"))
else:
    print("The pretrained network classified every test image correctly.")

# %% [markdown]
# ## 8. What this run shows
#
# The statements below are computed from this run's numbers (they change when the numbers do).

# %% tags=["nbval-ignore-output"]
notes = []
ahead = [g for g in gaps if g["difference"] > 0]
low, high = min(g["difference"] for g in gaps), max(g["difference"] for g in gaps)
notes.append(f"Pretrained weights beat training from scratch at every fraction, by {low:.1f} to {high:.1f} points."
             if len(ahead) == len(gaps) else "Pretrained weights did **not** beat scratch at: "
             + ", ".join(f"{g['fraction']:.0%}" for g in gaps if g["difference"] <= 0) + ".")
first, last = gaps[0], gaps[-1]
change = last["difference"] - first["difference"]
trend = "stays about the same" if abs(change) < 0.5 else "shrinks" if change < 0 else "grows"
notes.append(f"The gap {trend}: {first['difference']:.1f} points at {first['fraction']:.0%} of the data, "
             f"{last['difference']:.1f} points at {last['fraction']:.0%}.")
notes.append(f"Going from {first['fraction']:.0%} to {last['fraction']:.0%} of the data changes test accuracy by "
             f"{last['scratch'] - first['scratch']:+.1f} points from scratch and "
             f"{last['pretrained'] - first['pretrained']:+.1f} pretrained.")
noisy = [r for r in summary if r["n"] > 1 and 100 * r["test_acc_std"] > 2]
if noisy:
    notes.append("Seed-to-seed spread above 2 points in: " + ", ".join(
        f"{r['fraction']:.0%} {r['init']} (±{100 * r['test_acc_std']:.1f})" for r in noisy)
        + " — differences smaller than that are not meaningful.")
elif all(r["n"] == 1 for r in summary):
    notes.append("Only one seed per configuration: run with more `seeds` to see how much of each difference is noise.")
notes.append(budget_note)
if session.synthetic or session.standin_weights:
    notes.append("⚠️ This run used synthetic stand-ins (data and/or weights): the numbers test the code, "
                 "not transfer learning.")
display(Markdown("\n".join(f"* {n}" for n in notes)))

# %% tags=["nbval-ignore-output"]
key_numbers = {}
for g in gaps:
    key_numbers[f"pretrained_acc_{g['fraction']:.0%}"] = round(g["pretrained"], 2)
    key_numbers[f"scratch_acc_{g['fraction']:.0%}"] = round(g["scratch"], 2)
    key_numbers[f"gap_{g['fraction']:.0%}"] = round(g["difference"], 2)
key_numbers[f"scratch_{long_epochs}_epochs_acc_{P.fractions[0]:.0%}"] = round(by_budget["scratch", long_epochs], 2)
record_path = cu.results.save_results(NOTEBOOK, key_numbers, rows=rows + budget_rows, parameters=P.as_dict(), notes=notes,
                                      figures=figure_paths)
print(f"results written to {record_path}")
cu.results.table([key_numbers])


# %% [markdown]
# ## 9. Try it yourself
#
# Pick a fraction, an initialisation and a seed, and press **Run**. The panel calls the same
# `run_one` as above, so a choice that the headless run also made reproduces its numbers.

# %%
def show_run(fraction, initialisation, seed):
    row, history, _ = run_one(fraction, initialisation == "pretrained", seed, verbose=False)
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
