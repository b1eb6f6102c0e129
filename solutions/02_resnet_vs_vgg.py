# %% [markdown]
# # 02 — Which pretrained backbone? ResNet vs VGG, and how deep
#
# Once we have decided to fine-tune an ImageNet network, we still have to pick *which* one.
# Bigger networks cost more time per epoch and per prediction: **do they also give more accuracy
# on a small new task?** This notebook asks two versions of the question.
#
# **Part 1 — the same budget for two backbones.** Two pretrained networks of different size, every
# layer fine-tuned on the same share of the training set with the same optimizer and epochs. We
# measure test accuracy, seconds per training epoch and images per second at inference. The
# reference run (the COMP5541 notebook's part B) compared ResNet18 (about 11.7 million parameters,
# skip connections) with VGG16 (about 138 million, most in its three fully connected layers).
#
# **Part 2 — deeper backbones with little data.** ResNet18, 34 and 50 trained on 100 images per
# class, with only the last two parameter-owning layer groups trainable (`layer4` + `fc`), as in a
# write-up on choosing trainable layers. A disjoint validation set picks the best epoch; we report
# the test accuracy of that epoch.
#
# Every run is repeated over several seeds, so each difference can be set against the
# seed-to-seed spread. You predict one outcome before it runs and explain what your run shows in
# the written questions.

# %% [markdown]
# ## About this run
#
# What runs depends on the profile (printed below the imports):
#
# * `smoke` checks the plumbing in seconds on synthetic stand-ins with random "pretrained"
#   weights: its numbers mean nothing;
# * `offline` has no ResNet or VGG weights, so **both parts compare EfficientNet-Lite0
#   (3.4 M parameters) with EfficientNet-Lite2 (4.8 M)** on scikit-learn's handwritten digits at
#   48 px, three seeds: the same questions, asked of other networks;
# * `laptop` downloads CIFAR-10 and runs small versions of both parts (64 px, one seed);
# * `colab` runs them on a T4-class GPU at 112 px, two seeds; `full` uses the reference settings
#   (224 px, three seeds) on a larger GPU. On a GPU that computes bfloat16 natively (Ampere or
#   newer) `cu.fit` trains in bfloat16 mixed precision, where the references trained in float32.
#
# **What reproduces.** Run again on the same machine and numeric path (the same CPU or GPU, torch
# build and number of threads), a profile gives the same accuracies to the last digit; timings
# always vary. On another machine the digits differ: processors with other vector instructions
# round differently, and a few dozen training updates turn last-bit differences into points of
# accuracy. What should carry over is the findings table at the end, within the seed-to-seed
# spread, not the digits.

# %% tags=["parameters"]
# Parameters: `profile` picks a parameter set; every knob left at None comes from the profile.
profile = "auto"
dataset = None            # "cifar10" or "digits"
compare_models = None     # Part 1 backbones, e.g. ["resnet18", "vgg16"]
fraction = None           # Part 1 share of the training set, e.g. 0.5
num_epochs = None         # Part 1 epochs
batch_size = None         # Part 1 batch size
lr = None                 # Part 1 learning rate (SGD)
momentum = None           # Part 1 SGD momentum
depth_models = None       # Part 2 backbones, e.g. ["resnet18", "resnet34", "resnet50"]
train_per_class = None    # Part 2 training images per class
val_per_class = None      # Part 2 validation images per class (disjoint from training)
trainable_layers = None   # Part 2 trainable parameter-owning layer groups, counted from the output
depth_num_epochs = None   # Part 2 epochs
depth_batch_size = None   # Part 2 batch size
depth_optimizer = None    # Part 2 optimizer, "adam" or "sgd"
depth_lr = None           # Part 2 learning rate
seeds = None              # one run per seed and configuration, e.g. [0, 1, 2]
image_size = None         # side length fed to the networks, e.g. 224
test_fraction = None      # share of the test set to evaluate on (1.0 for all of it)
num_workers = None        # data-loading worker processes
device = None             # None means CUDA if available, else CPU

# %%
import copy
import statistics
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from torch import nn

import course_utils as cu

check = cu.selfcheck.architectures  # this notebook's self-checks

NOTEBOOK = "02_resnet_vs_vgg"
P = cu.load_parameters(NOTEBOOK, globals())  # the parameters cell's knobs, None ones from the profile
all_models = list(dict.fromkeys(P.compare_models + P.depth_models))  # both parts, in order, no repeats
session = cu.start_session(P, backbones=all_models)
print(P)
print("device:", session.device, "| data:", session.data_label)

# %% [markdown]
# ## 1. The data
#
# Every backbone gets its inputs normalized the way its own pretrained weights expect, so the
# loaders are built per backbone (ResNet and VGG use the ImageNet mean and std; EfficientNet-Lite
# uses its TensorFlow preprocessing). All runs are evaluated on the same test images.
#
# **From the library, written by you in notebook 01.** `cu.build_model(name, num_classes)` is your `load_imagenet_model` + `replace_head` in one call, and `cu.fit` is your epoch loop over `train_one_epoch` and `evaluate` (with validation, schedules and early stopping added). This notebook uses them so that its cells show what is new here.

# %%
train_set, test_set = session.classification_data()
class_names = list(train_set.classes)
num_classes = len(class_names)
# A fixed, stratified share of the test set (seed 0 for every run, so all models see the same images).
test_subset = cu.subset_fraction(test_set, P.test_fraction, seed=0)
print(f"training images: {len(train_set)}, test images used: {len(test_subset)} of {len(test_set)}, "
      f"classes: {num_classes}")
for name in all_models:
    mean, std = cu.normalization_for(name)
    print(f"normalization for {name}: mean={tuple(round(m, 3) for m in mean)}, std={tuple(round(s, 3) for s in std)}")

# %% [markdown]
# Training images as the first backbone receives them (resized, augmented), un-normalized with
# that backbone's own mean and std before display so the colours are the real ones.

# %%
sample_mean, sample_std = cu.normalization_for(P.compare_models[0])
sample_loader = cu.make_loader(train_set, batch_size=16, shuffle=True, augment=True,
                               image_size=P.image_size, mean=sample_mean, std=sample_std)
torch.manual_seed(0)
images, labels = next(iter(sample_loader))
fig = cu.plots.show_images(images, labels, class_names, sample_mean, sample_std,
                        title=f"Training samples as {P.compare_models[0]} sees them — {session.data_label}")
figure_paths = [cu.plots.save_figure(fig, "02_samples")]


# %% [markdown]
# ## 2. Size: counting parameters
#
# ### Exercise 1 — total and trainable parameters
#
# Write `parameter_counts(model)` that returns a pair of Python ints `(total, trainable)`:
# the number of values in all of the model's parameters, and in those that will be trained
# (`requires_grad=True`). Count each parameter once, even if a layer is used twice, and leave
# buffers such as BatchNorm's running statistics out — they are not learned by gradient descent.
#
# Hint: `model.parameters()` lists every parameter once; `tensor.numel()` is its number of values.

# %% course={"exercise": "parameter_counts"} tags=["exercise"]
def parameter_counts(model):
    ### BEGIN SOLUTION
    parameters = list(model.parameters())
    total = sum(p.numel() for p in parameters)
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    return total, trainable
    ### END SOLUTION


# %% tags=["self-check"]
check.parameter_counts(parameter_counts)

# %% [markdown]
# The backbones of both parts with a head for our classes. Part 1 trains every layer; Part 2
# trains only the last `trainable_layers` parameter-owning groups. Counting needs no pretrained
# weights: the architecture alone fixes the numbers.

# %%
size_rows = []
for name in all_models:
    model = cu.build_model(name, num_classes, pretrained=False)
    total, _ = parameter_counts(model)
    trainable_groups = cu.set_trainable_layers(model, P.trainable_layers)
    _, trainable_part2 = parameter_counts(model)
    size_rows.append({"backbone": name, "head": cu.models.get_architecture(name).head,
                      "parameters (all trainable in Part 1)": f"{total:,}",
                      "Part 2 trains": " + ".join(trainable_groups),
                      "trainable in Part 2": f"{trainable_part2:,}",
                      "share in Part 2": f"{100 * trainable_part2 / total:.1f} %"})
    del model
cu.results.table(size_rows)


# %% [markdown]
# ## 3. Speed: measuring inference throughput
#
# Seconds per training epoch depend on the data pipeline, the batch size and what is frozen.
# We also want a number that only depends on the network: how many images per second it can
# classify.
#
# ### Exercise 2 — images per second, measured properly
#
# Write `images_per_second(model, images, repeats)`. It must
#
# * run the model in **eval mode** (dropout off, BatchNorm on its running statistics) and without
#   recording gradients (`torch.no_grad()`);
# * do one **warm-up** call first and not time it (the first call pays one-off costs: memory
#   allocation, choosing GPU kernels);
# * time `repeats` further calls with `time.perf_counter()`; on a GPU, calls return before the
#   work is done, so call `torch.cuda.synchronize()` before reading the clock — only when
#   `images.device.type == "cuda"`;
# * return `len(images)` divided by the **median** time of one call (one slow call — another
#   program, a clock hiccup — must not decide the result);
# * leave every module of the model in the mode it had before (a fine-tuned model may keep some
#   layers in eval mode on purpose).

# %% course={"exercise": "images_per_second"} tags=["exercise"]
def images_per_second(model, images, repeats):
    ### BEGIN SOLUTION
    previous_modes = {module: module.training for module in model.modules()}
    on_gpu = images.device.type == "cuda"
    model.eval()
    timings = []
    try:
        with torch.no_grad():
            model(images)  # warm-up, not timed
            for _ in range(repeats):
                if on_gpu:
                    torch.cuda.synchronize(images.device)
                started = time.perf_counter()
                model(images)
                if on_gpu:
                    torch.cuda.synchronize(images.device)
                timings.append(time.perf_counter() - started)
    finally:
        for module, training in previous_modes.items():
            module.training = training
    return len(images) / statistics.median(timings)
    ### END SOLUTION


# %% tags=["self-check"]
check.images_per_second(images_per_second)

# %% [markdown]
# ## 4. Part 1 — the same budget for every backbone
#
# One run = one backbone, one seed: a stratified `fraction` of the training set (the same images
# for every backbone with the same seed), the pretrained network with a new head, every layer
# trained with SGD, then the test set. After training we measure inference throughput on a batch
# of test images. The history is recorded once per epoch.

# %%
THROUGHPUT_BATCH = 32   # images per timed call
THROUGHPUT_REPEATS = 5  # timed calls; their median counts
THROUGHPUT_ROUNDS = 3   # measurements per model; the best counts (another program can only slow one down)
loss_fn = nn.CrossEntropyLoss()


def loaders_for(backbone, train_subset, batch_size, val_subset=None, augment=True):
    """Training (augmented unless told not to), optional validation and test loaders normalized for `backbone`."""
    mean, std = cu.normalization_for(backbone)
    common = dict(image_size=P.image_size, mean=mean, std=std, num_workers=P.num_workers)
    train_loader = cu.make_loader(train_subset, batch_size=batch_size, shuffle=True, augment=augment, **common)
    val_loader = cu.make_loader(val_subset, batch_size=256, **common) if val_subset is not None else None
    test_loader = cu.make_loader(test_subset, batch_size=256, **common)
    return train_loader, val_loader, test_loader


def measure_throughput(model, test_loader):
    """Inference images per second on the first test images (same batch for every model), best of a few rounds."""
    batches = []
    for images, *_ in test_loader:
        batches.append(images)
        if sum(len(b) for b in batches) >= THROUGHPUT_BATCH:
            break
    probe_images = torch.cat(batches)[:THROUGHPUT_BATCH]
    probe_images = probe_images.to(session.device)
    return max(images_per_second(model, probe_images, THROUGHPUT_REPEATS) for _ in range(THROUGHPUT_ROUNDS))


# %%
def run_comparison(backbone, seed, verbose=True):
    """Part 1: fine-tune all layers of `backbone` on a `fraction` of the training set; evaluate on the test set."""
    cu.seed_everything(seed)
    train_subset = cu.subset_fraction(train_set, P.fraction, seed=seed)
    train_loader, _, test_loader = loaders_for(backbone, train_subset, P.batch_size)
    model = cu.build_model(backbone, num_classes, pretrained=True)
    total, trainable = parameter_counts(model)
    history = cu.fit(model, train_loader, num_epochs=P.num_epochs, loss_fn=loss_fn,
                     optimizer=lambda m: torch.optim.SGD(cu.trainable_parameters(m), lr=P.lr, momentum=P.momentum),
                     device=session.device, verbose=verbose, description=f"{backbone} seed {seed}")
    test = cu.evaluate(model, test_loader, loss_fn)
    row = {"model": backbone, "seed": seed, "train_images": len(train_subset), "parameters": total,
           "trainable": trainable, "test_acc": test["acc"], "test_loss": test["loss"],
           # The last epoch's training loss and accuracy, and the loss of a model guessing every class alike.
           "final_train_loss": history.last()["train_loss"], "final_train_acc": history.last()["train_acc"],
           "chance_loss": float(np.log(num_classes)),
           # The fastest epoch: the first one carries one-off start-up costs, and another program
           # on the machine can only slow an epoch down, never speed it up. Its CPU time barely
           # grows when another program shares the cores (a thread that waits is not counted).
           "seconds_per_epoch": float(np.min(history["seconds"])),
           "cpu_seconds_per_epoch": float(np.min(history["cpu_seconds"])),
           "images_per_second": measure_throughput(model, test_loader)}
    return row, history, model


# %% [markdown] course={"kind": "prediction", "points": 1, "question": "predict_epoch_time"}
# **Predict before you run Part 1.** The second backbone of Part 1 is the larger one (see the
# table of section 2: VGG16 has about 12× ResNet18's parameters in `laptop`, `colab` and `full`;
# EfficientNet-Lite2 about 1.4× Lite0's in `offline`). How many times as long will one training
# epoch of the second backbone take as one epoch of the first? Type your number into the next
# cell before you run it, and say here in a sentence or two what you expect the time of an epoch
# to grow with.
#
# ### BEGIN SOLUTION
# The time of an epoch grows with the computation per image (the multiply-adds of every layer at
# the input resolution, and the memory traffic they cause), not with the number of parameters.
# VGG16's extra parameters sit mostly in its fully connected layers, which cost little per image;
# its thirteen convolutions at full resolution cost about 15.5 GFLOPs per 224 px image against
# ResNet18's 1.8, so several times ResNet18's epoch time (about 8×) is a good guess; the reference
# GPU measured 506 s vs 33 s, 15×. EfficientNet-Lite2 is deeper and wider than Lite0 at the same
# 48 px, so somewhat more than 1× (the recorded `offline` run: 1.08 s vs 0.78 s, 1.4×); on a CPU
# with small batches, fixed costs per batch (loading, Python) shrink such ratios. Any number with
# that reasoning is a good answer (the 2.0 in the cell below is a guess for `offline`'s pair); the
# run says how close it came.
# ### END SOLUTION
#
# ### BEGIN RUBRIC
# 1 point: a number typed in before the run, with a reason that names the computation per image
# (layers, channels, resolution, FLOPs), not only the parameter count. The number need not be close.
# ### END RUBRIC

# %% tags=["prediction"]
predicted_epoch_ratio = None  # your prediction: seconds per epoch of the second backbone ÷ those of the first
### BEGIN SOLUTION
predicted_epoch_ratio = 2.0
### END SOLUTION

# %% tags=["nbval-ignore-output"]
compare_rows, compare_histories, kept = [], {}, {}
for seed in P.seeds:  # the backbones take turns, so a program that starts beside us slows both alike
    for backbone in P.compare_models:
        row, history, model = run_comparison(backbone, seed)
        compare_rows.append(row)
        compare_histories.setdefault(backbone, []).append(history)
        if seed == P.seeds[0]:
            kept[backbone] = model  # looked at closely below

# %% [markdown]
# ### Part 1 results
#
# Mean ± standard deviation over seeds (a single seed shows only the mean). Seconds per epoch
# (each run's fastest epoch) and images per second depend on the machine: compare them between
# models of the same run, whose runs took turns. CPU seconds per epoch add up the time every
# thread of this process computed (on a GPU run they leave out the GPU's work): another program
# on a busy machine stretches the wall clock, far less the CPU time.

# %% tags=["nbval-ignore-output"]
metrics = ["test_acc", "test_loss", "seconds_per_epoch", "cpu_seconds_per_epoch", "images_per_second", "parameters"]
compare_summary = cu.results.aggregate(compare_rows, by=["model"], metrics=metrics)
cu.results.table([{"backbone": r["model"], "parameters": f"{r['parameters_mean']:,.0f}", "runs": r["n"],
            "test accuracy (%)": cu.results.mean_std(r, "test_acc"),
            "test loss": cu.results.mean_std(r, "test_loss", 1, 4),
            "seconds per epoch": cu.results.mean_std(r, "seconds_per_epoch", 1, 1),
            "CPU seconds per epoch": cu.results.mean_std(r, "cpu_seconds_per_epoch", 1, 1),
            "inference images/s": cu.results.mean_std(r, "images_per_second", 1, 0)} for r in compare_summary])

# %% [markdown]
# Your prediction beside this run's ratio of seconds per epoch. The reference run (one seed each,
# float32 on its GPU) for comparison:
#
# | Part 1 reference (the COMP5541 notebook's part B) | ResNet18 | VGG16 |
# |---|---|---|
# | data | 50 % of CIFAR-10 (25,000 images), 224 px | same |
# | training | SGD lr 1e-3, momentum 0.9, batch 64, 10 epochs, all layers | same |
# | test accuracy | 94.30 % | 92.59 % |
# | seconds per epoch (its GPU) | 33 s | 506 s |

# %% tags=["nbval-ignore-output"]
if len(P.compare_models) > 1:
    first, second = ({r["model"]: r for r in compare_summary}[name] for name in P.compare_models[:2])
    measured_ratio = second["seconds_per_epoch_mean"] / first["seconds_per_epoch_mean"]
    what = f"seconds per epoch, {second['model']} ÷ {first['model']}"
    display(cu.results.compare_prediction(predicted_epoch_ratio, measured_ratio, what, unit="×"))

# %% [markdown]
# Each Part 1 run on its own: the training accuracy of its last epoch (on augmented images, with
# BatchNorm normalizing each batch by its own statistics) beside its test accuracy (eval mode,
# BatchNorm on its running statistics).

# %% tags=["nbval-ignore-output"]
cu.results.table([{"backbone": r["model"], "seed": r["seed"],
                   "training accuracy, last epoch (%)": f"{100 * r['final_train_acc']:.2f}",
                   "test accuracy (%)": f"{100 * r['test_acc']:.2f}",
                   "training minus test (points)": f"{100 * (r['final_train_acc'] - r['test_acc']):+.2f}",
                   "final training loss": f"{r['final_train_loss']:.3f}", "test loss": f"{r['test_loss']:.3f}"}
                  for r in compare_rows])

# %% [markdown] course={"points": 2, "question": "bn_statistics"}
# **Training and test accuracy, run by run.** (a) In the table above, does any run's test
# accuracy fall much further below its training accuracy than the other runs' do? Quote the numbers.
# (b) A BatchNorm layer normalizes each training batch with that batch's own mean and variance,
# but in eval mode with running averages that every training batch moves 10 % of the way towards
# its own statistics. Count the updates of your run (training images ÷ batch size × epochs) and
# give one way these running statistics could make a model's test accuracy fall short of its
# training accuracy. It is a hypothesis: describe a check you could run in this notebook that would
# confirm or refute it, and say what it predicts for VGG16, which has no BatchNorm layers.
#
# ### BEGIN SOLUTION
# (a) It depends on the run. In the recorded `offline` run one run stands out: EfficientNet-Lite2
# with seed 0 reached 53.7 % test accuracy where its other seeds reached 80.9 and 88.6 % and its
# final training loss (0.56) was like theirs; another machine's run had no such outlier (all runs
# near 80 %). A good answer quotes its own table, whichever it shows.
# (b) 135 images in batches of 16 are 9 updates per epoch, 54 in 6 epochs, at a learning rate that
# moves the weights a lot each time. The running averages mix statistics measured under earlier
# weights (and from small, noisy batches: the last batch of an epoch holds 7 images), so in eval
# mode the layers normalize with a mean and variance that no longer match what the final weights
# produce; the error compounds over dozens of BatchNorm layers. Other causes are possible
# (overfitting, a run that was unstable), so this is to be checked: reset each BatchNorm layer's
# running statistics (`reset_running_stats()`, `momentum = None` for a plain average), pass the
# training images through in train mode without gradients, and evaluate again; if the outlier's
# test accuracy comes back to its seeds' level, the statistics were the cause. VGG16 has no
# BatchNorm, so any gap it shows must have another cause.
# ### END SOLUTION
#
# ### BEGIN RUBRIC
# 1 point: (a) read from the student's own table, with numbers (an outlier named, or none found).
# 1 point: (b) a mechanism that contrasts batch statistics in training with running statistics in
# eval mode, tied to the few updates, and a concrete check (recompute the statistics with the final
# weights, or evaluate with batch statistics) or the VGG16 consequence.
# ### END RUBRIC

# %% tags=["nbval-ignore-output"]
fig = cu.plots.plot_histories(compare_histories, metrics=("train_loss", "train_acc"),
                           title=f"Part 1 training curves (mean ± std over seeds) — {session.data_label}")
figure_paths.append(cu.plots.save_figure(fig, "02_part1_training_curves"))

# %% [markdown]
# ### Where the Part 1 backbones go wrong
#
# The first seed's models on the test images: which classes each confuses (rows: the true
# class, in % of its images), how accurate each is per class, and some images the first backbone
# got wrong. `cu.train.predict` is the library's version of the evaluation pass from notebook 01.

# %% tags=["nbval-ignore-output"]
seen = {}
for backbone, model in kept.items():
    backbone_mean, backbone_std = cu.normalization_for(backbone)
    test_loader = cu.make_loader(test_subset, batch_size=256, image_size=P.image_size, mean=backbone_mean,
                                 std=backbone_std, num_workers=P.num_workers)
    seen[backbone] = cu.train.predict(model.to(session.device), test_loader, wrong_images=16)
fig, axes = plt.subplots(1, len(seen), figsize=(6 * len(seen), 5), squeeze=False)
for ax, (backbone, (labels, predicted, _)) in zip(axes[0], seen.items()):
    cu.plots.confusion_matrix(labels, predicted, class_names, ax=ax, title=f"{backbone}, seed {P.seeds[0]}")
fig.tight_layout()
figure_paths.append(cu.plots.save_figure(fig, "02_confusion_matrices"))

# %% tags=["nbval-ignore-output"]
display(cu.results.per_class_accuracy(seen, class_names))
first = P.compare_models[0]
labels, predicted, wrong_images = seen[first]
wrong = torch.nonzero(predicted != labels).flatten()[:16]
if len(wrong):
    wrong_mean, wrong_std = cu.normalization_for(first)
    fig = cu.plots.show_images(wrong_images, labels[wrong], class_names, wrong_mean, wrong_std,
                               predicted=predicted[wrong], title=f"Test images {first} got wrong (true → predicted)")
    figure_paths.append(cu.plots.save_figure(fig, "02_misclassified"))

# %% [markdown]
# ## 5. Part 2 — deeper backbones with little data
#
# Training and validation images are drawn per class from the training set, the validation
# images **excluding** the training ones, so the two sets are disjoint. The test set stays the
# held-out judge.
#
# The trainable-layers write-up trained ResNet18, 34 and 50 with 100 training and 100 validation
# images per class, batch 256, 20 epochs, learning rate 1e-3 and `TRAINABLE_LAYERS = 2`. Its
# one-seed run reached these validation accuracies:
#
# | Part 2 reference (the trainable-layers write-up) | ResNet18 | ResNet34 | ResNet50 |
# |---|---|---|---|
# | highest validation accuracy of the 20 epochs | 81.9 % | 81.6 % | 79.8 % |
# | validation accuracy at the last epoch | 81.7 % | 79.4 % | 74.8 % |
#
# The highest of 20 noisy validation numbers is an optimistic estimate, and the last one an
# arbitrary one: here the epoch with the best validation accuracy is kept and **the test accuracy
# of that epoch** reported (images that played no part in the choice), over several seeds. The
# write-up does not name its optimizer; its logs (about 50 % training accuracy after the first
# four updates) look like Adam at 1e-3, which is what `depth_optimizer` uses by default.

# %%
example_train = cu.subset_per_class(train_set, P.train_per_class, seed=P.seeds[0])
example_val = cu.subset_per_class(train_set, P.val_per_class, seed=P.seeds[0], exclude=example_train)
print(f"seed {P.seeds[0]}: {len(example_train)} training images ({P.train_per_class} per class), "
      f"{len(example_val)} validation images ({P.val_per_class} per class)")
print("training images per class:  ", cu.class_counts(example_train))
print("validation images per class:", cu.class_counts(example_val))
print("images in both sets:", len(set(example_train.indices) & set(example_val.indices)))

# %% [markdown]
# Freezing with `cu.set_trainable_layers` counts only layer groups that own parameters, from
# the output backwards. With `trainable_layers` = 2, the frozen groups also keep their BatchNorm
# running statistics:

# %%
example_model = cu.build_model(P.depth_models[0], num_classes, pretrained=False)
print("trainable groups:", cu.set_trainable_layers(example_model, P.trainable_layers))
print(cu.freezing.format_trainable_summary(example_model))
del example_model


# %% [markdown]
# ### Exercise 3 — keep the best epoch, stop when it stops improving
#
# With a validation set we can keep the epoch that did best on it and stop training once
# nothing improves any more. `cu.fit` asks an *early-stopping object* after every epoch:
# it calls `update(record, model)` with the epoch's record (a dict with `"epoch"`, counted from 1,
# `"val_acc"`, ...) and, when training is over, `restore_best(model)`. Write the class `KeepBest`:
#
# * `KeepBest(patience=None)` sets `self.monitor = "val_acc"` (the column `cu.fit` checks it can
#   record), `self.patience`, and `self.best_epoch = None`;
# * `update(record, model)`: when `record["val_acc"]` is **strictly** higher than every earlier one
#   (a tie keeps the earlier epoch), remember it, its epoch in `self.best_epoch`, and a **copy**
#   of the model's weights (`copy.deepcopy(model.state_dict())`: the state dict holds the live
#   tensors, which the next epoch changes); return `True` when `patience` epochs in a row have
#   brought no improvement (never, when `patience` is `None`), else `False`;
# * `restore_best(model)`: load the remembered weights back into `model`.

# %% course={"exercise": "keep_best"} tags=["exercise"]
class KeepBest:
    """Remember the best validation epoch's weights; stop after `patience` epochs without improvement."""

    def __init__(self, patience=None):
        ### BEGIN SOLUTION
        self.monitor, self.patience = "val_acc", patience
        self.best_epoch, self.best_value, self.best_state, self.bad_epochs = None, None, None, 0
        ### END SOLUTION

    def update(self, record, model):
        ### BEGIN SOLUTION
        if self.best_value is None or record["val_acc"] > self.best_value:
            self.best_epoch, self.best_value, self.bad_epochs = record["epoch"], record["val_acc"], 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1
        return self.patience is not None and self.bad_epochs >= self.patience
        ### END SOLUTION

    def restore_best(self, model):
        ### BEGIN SOLUTION
        model.load_state_dict(self.best_state)
        ### END SOLUTION


# %% tags=["self-check"]
check.keep_best(KeepBest)


# %% [markdown]
# One Part 2 run: draw the disjoint subsets, build the pretrained backbone, freeze all but the
# last `trainable_layers` groups, train with validation after every epoch. Your `KeepBest()`
# (no patience: it never stops a run, it only remembers) goes to `cu.fit`, which restores that
# epoch's weights at the end, so the test accuracy measured afterwards is the test accuracy
# *of the epoch chosen on validation*. (Freezing is done by the library here;
# notebook 03 is where you write it.) The training images are not augmented, as in notebook
# 03's part B from the same write-up: everything before the trainable groups is then a fixed
# function, and `cache_features=True` runs it once instead of every epoch.

# %%
def run_depth(backbone, seed, verbose=True):
    """Part 2: train the last `trainable_layers` groups on `train_per_class` images per class."""
    cu.seed_everything(seed)
    train_subset = cu.subset_per_class(train_set, P.train_per_class, seed=seed)
    val_subset = cu.subset_per_class(train_set, P.val_per_class, seed=seed, exclude=train_subset)
    train_loader, val_loader, test_loader = loaders_for(backbone, train_subset, P.depth_batch_size, val_subset,
                                                        augment=False)
    model = cu.build_model(backbone, num_classes, pretrained=True)
    cu.set_trainable_layers(model, P.trainable_layers)
    total, trainable = parameter_counts(model)
    keep = KeepBest()  # your Exercise 3: remembers the best validation epoch
    history = cu.fit(model, train_loader, val_loader, num_epochs=P.depth_num_epochs, loss_fn=loss_fn,
                     optimizer=lambda m: cu.train.make_optimizer(P.depth_optimizer, cu.trainable_parameters(m),
                                                                 lr=P.depth_lr, momentum=P.momentum),
                     early_stopping=keep, cache_features=True, device=session.device, verbose=verbose,
                     description=f"{backbone} seed {seed}")
    best = {"best_epoch": keep.best_epoch, "best_val_acc": history.records[keep.best_epoch - 1]["val_acc"],
            "last_epoch": len(history), "last_val_acc": history.last()["val_acc"]}
    test = cu.evaluate(model, test_loader, loss_fn)
    row = {"model": backbone, "seed": seed, "parameters": total, "trainable": trainable, **best,
           "test_acc": test["acc"], "test_loss": test["loss"],
           "final_train_loss": history.last()["train_loss"], "chance_loss": float(np.log(num_classes)),
           "seconds_per_epoch": float(np.min(history["seconds"])),  # the fastest; training + validation
           "cpu_seconds_per_epoch": float(np.min(history["cpu_seconds"])),
           "images_per_second": measure_throughput(model, test_loader)}
    return row, history


# %% tags=["nbval-ignore-output"]
depth_rows, depth_histories = [], {}
for seed in P.seeds:  # taking turns, as in part 1
    for backbone in P.depth_models:
        row, history = run_depth(backbone, seed)
        depth_rows.append(row)
        depth_histories.setdefault(backbone, []).append(history)

# %% [markdown]
# ### Part 2 results
#
# "best val" is the highest validation accuracy of a run (optimistic: it was chosen on those very
# images), "last val" what the final epoch reached, "test at best epoch" the honest estimate.

# %% tags=["nbval-ignore-output"]
depth_summary = cu.results.aggregate(depth_rows, by=["model"],
                              metrics=metrics + ["best_epoch", "best_val_acc", "last_val_acc", "trainable"])
cu.results.table([{"backbone": r["model"], "parameters": f"{r['parameters_mean']:,.0f}",
            "trainable": f"{r['trainable_mean']:,.0f}", "runs": r["n"],
            "best epoch": cu.results.mean_std(r, "best_epoch", 1, 1),
            "best val (%)": cu.results.mean_std(r, "best_val_acc"),
            "last val (%)": cu.results.mean_std(r, "last_val_acc"),
            "test at best epoch (%)": cu.results.mean_std(r, "test_acc"),
            "seconds per epoch": cu.results.mean_std(r, "seconds_per_epoch", 1, 1),
            "inference images/s": cu.results.mean_std(r, "images_per_second", 1, 0)} for r in depth_summary])

# %% tags=["nbval-ignore-output"]
fig = cu.plots.plot_histories(depth_histories, metrics=("train_acc", "val_acc"),
                           title=f"Part 2 training curves (mean ± std over seeds) — {session.data_label}")
figure_paths.append(cu.plots.save_figure(fig, "02_part2_training_curves"))

# %% [markdown]
# ## 6. Accuracy against size and against time
#
# Each point is one backbone: mean over seeds with ±1 standard deviation as error bars (on both
# axes for the timings). Parameter counts that span a factor of 10 or more get a log scale.

# %% tags=["nbval-ignore-output"]
from matplotlib.ticker import FuncFormatter


def plot_tradeoff(ax, summary, x, title, xlabel, x_scale=1.0, logx=False):
    """Test accuracy (%) against `x`, one labelled point per backbone, error bars from the seeds."""
    for r in summary:
        xs, x_err = r[f"{x}_mean"] * x_scale, r[f"{x}_std"] * x_scale
        ys, y_err = 100 * r["test_acc_mean"], 100 * r["test_acc_std"]
        ax.errorbar([xs], [ys], xerr=[x_err], yerr=[y_err], marker="o", capsize=4, label=r["model"])
        ax.annotate(r["model"], (xs, ys), textcoords="offset points", xytext=(6, 6), fontsize=9)
    if logx:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.margins(x=0.25, y=0.25)


def spans_decade(summary, x):
    """A log scale only helps when the values differ by 10× or more (VGG16 vs ResNet18 does)."""
    values = [r[f"{x}_mean"] for r in summary]
    return max(values) >= 10 * min(values)


# %% tags=["nbval-ignore-output"]
fig, axes = plt.subplots(2, 2, figsize=(11, 8))
part2_label = f"Part 2 ({P.trainable_layers} trainable groups, best epoch)"
for row_axes, summary, part in ((axes[0], compare_summary, "Part 1 (all layers)"),
                                (axes[1], depth_summary, part2_label)):
    plot_tradeoff(row_axes[0], summary, "parameters", f"{part}: accuracy vs size",
                  "parameters (millions)", x_scale=1e-6, logx=spans_decade(summary, "parameters"))
    plot_tradeoff(row_axes[1], summary, "seconds_per_epoch", f"{part}: accuracy vs time",
                  "seconds per epoch")
fig.suptitle(f"Accuracy against parameters and time per epoch — {session.data_label}")
fig.tight_layout()
figure_paths.append(cu.plots.save_figure(fig, "02_accuracy_vs_size_and_time"))

# %% [markdown]
# ## 7. What this run shows
#
# The run's key numbers (saved with its results), then the findings declared for this profile,
# each checked on this run's rows: ✓ or ✗, with the margin and the seed-to-seed spread. What
# they mean is for you to say in the questions below.

# %% tags=["nbval-ignore-output"]
key_numbers = {}
for r in compare_summary:
    key_numbers[f"part1_{r['model']}_test_acc"] = round(100 * r["test_acc_mean"], 2)
    key_numbers[f"part1_{r['model']}_seconds_per_epoch"] = round(r["seconds_per_epoch_mean"], 2)
    key_numbers[f"part1_{r['model']}_images_per_second"] = round(r["images_per_second_mean"], 1)
for r in depth_summary:
    key_numbers[f"part2_{r['model']}_test_acc_at_best_epoch"] = round(100 * r["test_acc_mean"], 2)
    key_numbers[f"part2_{r['model']}_best_val_acc"] = round(100 * r["best_val_acc_mean"], 2)
    key_numbers[f"part2_{r['model']}_last_val_acc"] = round(100 * r["last_val_acc_mean"], 2)
rows = [{"part": 1, **r} for r in compare_rows] + [{"part": 2, **r} for r in depth_rows]
record_path = cu.results.save_results(NOTEBOOK, key_numbers, rows=rows, parameters=P.as_dict(), figures=figure_paths)
print(f"results written to {record_path}")
if session.synthetic or session.standin_weights:
    print("This run used synthetic stand-ins (data and/or weights): its numbers test the code, not transfer learning.")
cu.results.table([{"key number": k, "value": v} for k, v in key_numbers.items()])

# %% tags=["nbval-ignore-output"]
cu.results.findings_table(NOTEBOOK, rows, P.profile)

# %% [markdown] course={"points": 2, "question": "part1_ranking"}
# **Which backbone transferred better?** From the Part 1 table (mean ± std over seeds) and the
# findings table: which backbone reached the higher test accuracy in your run, and is the difference
# larger than the seed-to-seed spread? The reference measured ResNet18 94.30 % and VGG16 92.59 %,
# one seed each: what would it take to call that difference real? Taking the cost into account
# (seconds per epoch, images per second), which backbone would you choose for this task, and why?
#
# ### BEGIN SOLUTION
# In the recorded `offline` run EfficientNet-Lite0 reached 82.85 ± 1.98 % and Lite2 74.39 ± 18.36 %:
# the 8.5-point gap comes from one collapsed Lite2 seed (53.7 %) and is far inside the spread, so
# the run does not rank them; without that seed the two are close (82.9 vs 84.7 %). Another
# machine's offline run gave 80.25 vs 80.40 %: no ranking either. In `full` ResNet18 should come out
# a point or two ahead, as in the reference, but only a difference larger than the seed spread
# (several seeds each, the same data for both) says more than one lucky draw; one seed each, as in
# the reference, cannot. The cost is not in doubt: the larger network took longer per epoch and
# classified fewer images per second in every profile (offline about 1.4×, the reference 15× for
# VGG16). With no accuracy gain that the data can show, the smaller, faster backbone is the choice.
# ### END SOLUTION
#
# ### BEGIN RUBRIC
# 1 point: compares the accuracy difference with the seed spread from the student's own numbers and
# draws the right conclusion (ranked or not); notes that one seed cannot separate a 1.7-point gap.
# 1 point: a choice that weighs the measured cost (time per epoch or images per second) against it.
# ### END RUBRIC

# %% [markdown] course={"points": 2, "question": "depth_gain"}
# **Depth with little data.** From the Part 2 table: (a) did the larger backbones reach a higher
# test accuracy at their best epoch than the smallest one, beyond the seed spread? (b) Compare each
# backbone's best validation accuracy with its test accuracy at that same epoch. Which of the two is
# the honest estimate of how the model does on new images, and did choosing the best of many
# validation numbers flatter it in your run? How large is one validation image, in points?
#
# ### BEGIN SOLUTION
# (a) Not in the recorded `offline` run: Lite0 89.31 % and Lite2 87.08 % at their best epochs, with a
# spread of up to ±1.8 points, so the larger network gained nothing; the reference saw the same with
# ResNet18 81.9, ResNet34 81.6 and ResNet50 79.8 % (best validation, one seed). With 100 images per
# class, the extra capacity of the deeper backbone has little to learn from.
# (b) The test accuracy of the chosen epoch is the honest estimate: its images played no part in the
# choice, while the best validation accuracy is the maximum of several noisy numbers measured on the
# very images that chose it, so on average it is biased upwards. Whether a run shows that depends on
# its size: offline has 20 validation images per class (200 images, 0.5 points each), and there the
# best validation accuracy was 0.11 points *below* the test accuracy on average: the bias is smaller
# than the noise of so few images. With more epochs to choose from and a noisier curve (the
# reference's ResNet50: 79.8 % best, 74.8 % last) the gap grows.
# ### END SOLUTION
#
# ### BEGIN RUBRIC
# 1 point: (a) answered from the student's numbers, with the spread (no gain beyond it, or a gain
# that exceeds it).
# 1 point: (b) names the test accuracy at the chosen epoch as the honest estimate, with the reason
# (the maximum is chosen on the same images), and reads the student's own gap, including when it
# is negative or within one image's worth.
# ### END RUBRIC

# %% [markdown]
# ## 8. Try it yourself
#
# Pick a backbone and a seed and press **Run**: the panel calls the same `run_comparison` as
# Part 1 (same data share, epochs and optimizer), so a backbone and seed that the headless run
# also used give its accuracy again on this machine and numeric path (timings vary with the load).

# %%
def show_run(backbone, seed):
    row, history, _ = run_comparison(backbone, seed, verbose=False)
    display(cu.plots.plot_histories({backbone: [history]}, metrics=("train_loss", "train_acc")))
    print(f"{backbone}, seed {seed}: test accuracy {100 * row['test_acc']:.2f} %, "
          f"{row['seconds_per_epoch']:.1f} s per epoch, {row['images_per_second']:.0f} images/s at inference")
    return row


panel = cu.widgets.ExperimentPanel(
    {"backbone": cu.widgets.choice("backbone", all_models, P.compare_models[0]),
     "seed": cu.widgets.choice("seed", P.seeds)},
    on_run=show_run, title=f"Part 1 run on {session.data_label}")
panel
