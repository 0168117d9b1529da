"""What the Alternatives page says around each of its views: captions (by chart), what to notice, formulas."""

from __future__ import annotations

from normviz import snippets
from normviz.config import DataSpec
from normviz.experiments import norm_zoo
from normviz.experiments.norm_cost import explain
from normviz.figures import alternatives as figs
from normviz.panels import Chart, Panel, Table, Text, diverged, percent_columns
from normviz.views import Part

CAPTIONS = {
    "axes": "Each cube is one activation tensor of N samples x C channels x H·W positions. The shaded block is "
    "the set of values that one mean and one variance are computed over; grey lines border the other "
    "sets. Drag a cube to turn it.",
    "tensor": "The same kind of tensor with real numbers: rows are samples, columns are channels (each with its "
    "H·W positions). Each coloured box is one set; hover a cell for its value and its set's mean and "
    "variance. Below: after normalising, every box has mean 0 and variance 1 (RMSNorm: mean square 1, "
    "the sign and relative size of its mean kept).",
    "every-norm": "Every norm starts from the same initial weights (per seed) and sees the same batches; Adam. "
    f"Test accuracy ({snippets.split_sizes(DataSpec(dataset='digits'))[0]} held-out digits) in eval mode: "
    "BatchNorm and Batch Renorm use their running statistics (PyTorch momentum "
    f"{norm_zoo.RENORM_KWARGS['momentum']:g}), the others need none. " + norm_zoo.RENORM_VS_PAPER,
    "cost": "Grey: the same training step (forward, backward, Adam) with the norm layers removed (ablation). "
    "Coloured: the extra time the norm layers take; the label is their share of the step. Solid: our "
    "written-out layers; hatched: torch's built-in modules. Fastest of 12 interleaved rounds, CPU time "
    "of one thread.",
    "sync-bn": "Every point trains the same model on global batches of W·b samples. Per-worker BN normalises each "
    "worker's b samples alone (its running statistics are worker 0's, as DDP broadcasts them); SyncBN "
    "combines every worker's mean and variance first. Middle and right: the first BN layer's input, batches "
    "drawn at random from the training set; in the CNN the H·W positions of one image are correlated, "
    "so the error is larger than the dotted 1/√(values) line.",
    "rnn": "RowRNN reads one image row per time step (8 steps), h_t = tanh(norm(W_x x_t + W_h h_{t-1})), and "
    "classifies the last state. Same initial weights and batches for the three.",
    "rnn-stats": "BatchNorm's running mean and variance for each time step (PyTorch momentum 0.1), after training.",
    "rnn-long": "Longer test sequences: the image read 2 or 3 times. Right, in eval mode on the test set: at each "
    "step t of a 24-step sequence, the std of BN's input (W_x x_t + W_h h_{t-1}) against the running "
    "std it divides by there, its own step's up to t = 7 and step 7's after that.",
}

NOTICE = {
    "axes": "- **BatchNorm**'s block runs across the batch: a sample's output depends on the other samples, "
    "and a batch is needed to compute it, so eval mode switches to running averages.\n"
    "- **LayerNorm, InstanceNorm and GroupNorm** stay inside one sample: they compute the same thing for "
    "any batch size, in training and in eval mode.\n"
    "- **GroupNorm** sits between them: G = 1 is LayerNorm, G = C is InstanceNorm (see the presets).",
    "every-norm": "- In the CNN at the default settings, **BatchNorm** and **GroupNorm + weight standardisation** "
    "learn fastest; plain GroupNorm and LayerNorm are not much better than no norm here. Weight "
    "standardisation is what brings GroupNorm up to BatchNorm.\n"
    "- **InstanceNorm** erases each image's per-channel mean and contrast: good for style transfer, "
    "poor for telling digits apart.\n"
    "- **Small batches** (preset *Batch of 2*): BatchNorm's statistics become noise and its running "
    "averages stop matching them; LayerNorm and GroupNorm do not depend on the batch size.\n"
    "- Differences of a few points can be luck: train several seeds per norm (preset *Three seeds*) "
    "before believing them.",
    "sync-bn": "- Per-worker BN with b samples estimates the mean with an error of about 1/√b of a standard "
    "deviation (MLP); SyncBN averages W·b values, √W times less noisy.\n"
    "- With **b = 1** a per-worker BatchNorm1d refuses to train (one value per channel). A per-worker "
    "BatchNorm2d runs, but normalises every image by its own statistics in training (InstanceNorm in "
    "disguise) and by running averages in eval mode, which do not match: the CNN learns nothing useful.\n"
    "- SyncBN is plain BN on the whole global batch (the tests check it against BatchNorm on that batch). "
    "Its price is communication: PyTorch's SyncBatchNorm gathers every worker's per-channel (mean, 1/σ, count) "
    "in the forward pass and sums two per-channel sums (of dy and of dy·(x − μ)) over the workers in the "
    "backward pass: two collectives per BN layer and step.",
    "rnn": "- Per-step BN needs one mean and variance **per time step**: step 0 (no previous state) differs from "
    "the later steps.\n"
    "- At step 8 and later it has **no statistics**: RowRNN refuses the sequence, unless told to reuse "
    "step 7's, which only works while later steps look like step 7.\n"
    "- **LayerNorm** normalises each sample over its own hidden units at every step: one layer for all "
    "steps, any length, any batch size.",
}

FORMULAS = {
    "axes": [
        r"\mu_S=\frac{1}{|S|}\sum_{i\in S}x_i,\qquad \sigma_S^2=\frac{1}{|S|}\sum_{i\in S}(x_i-\mu_S)^2",
        r"\hat x_i=\frac{x_i-\mu_{S(i)}}{\sqrt{\sigma_{S(i)}^2+\epsilon}},\qquad y_i=\gamma_c\hat x_i+\beta_c",
        r"S_{\text{BN}}=\{(\cdot,c,\cdot)\},\quad S_{\text{LN}}=\{(n,\cdot,\cdot)\},\quad "
        r"S_{\text{IN}}=\{(n,c,\cdot)\},\quad S_{\text{GN}}=\{(n,c,\cdot): \lfloor c/(C/G)\rfloor=g\}",
    ],
    "every-norm": [
        r"\text{BN: } \mu_c=\operatorname{mean}_{n,h,w}x_{nchw}\qquad "
        r"\text{GN: } \mu_{ng}=\operatorname{mean}_{c\in g,h,w}x_{nchw}",
        r"\text{WS: } \hat W_{o}=\frac{W_{o}-\operatorname{mean}(W_{o})}{\operatorname{std}(W_{o})}"
        r"\qquad \text{BRN: } \hat x=\frac{x-\mu_B}{\sigma_B}\,r+d,\ "
        r"r=\operatorname{clip}\Big(\frac{\sigma_B}{\sigma}\Big),\ d=\operatorname{clip}\Big("
        r"\frac{\mu_B-\mu}{\sigma}\Big)",
    ],
    "cost": [
        r"\text{share in the norm layers}=1-\frac{t(\text{step without norm layers})}"
        r"{t(\text{step with them})}"
    ],
    "sync-bn": [
        r"\text{all-gather of each worker's } (\mu_w,\ \sigma_w^2,\ n_w),\qquad "
        r"n_w=b\ \text{(MLP)},\quad n_w=b\,H\,W\ \text{(CNN)}",
        r"\mu=\frac{\sum_w n_w\,\mu_w}{\sum_w n_w},\qquad "
        r"\sigma^2=\frac{\sum_w n_w\big(\sigma_w^2+(\mu_w-\mu)^2\big)}{\sum_w n_w}"
        r"\quad\text{(within plus between workers)}",
    ],
    "rnn": [
        r"\text{BN: } h_t=\tanh\big(\mathrm{BN}_t(W_x x_t+W_h h_{t-1})\big)\ \text{(statistics per step } t)"
        r"\qquad \text{LN: } h_t=\tanh\big(\mathrm{LN}(W_x x_t+W_h h_{t-1})\big)"
    ],
}


def panels(part: Part, r, final: bool, font: int, tensor_norm: str = "group") -> list[Panel]:
    """The view the run belongs to is its experiment (`part`); tensor_norm: the norm of the small tensor (axes)."""
    if part.experiment == "alternatives":  # the axes view: a real tensor and the sets each norm averages over
        return [
            Chart("alt-cube", figs.axes_cube(r, font), CAPTIONS["axes"]),
            Chart("alt-tensor", figs.tensor_sets(r, tensor_norm, font), CAPTIONS["tensor"]),
            Table(r.table(tensor_norm)),
        ]
    if part.experiment == "norm_zoo":
        rows = r.table()
        out = [
            diverged(f"{row['norm']} network", row["diverged at step"], "its curves stop there")
            for row in rows
            if row.get("diverged at step")
        ]
        return out + [
            Chart("alt-zoo", figs.zoo_curves(r, font), CAPTIONS["every-norm"]),
            Table(rows, "alt-every-norm-results", percent_columns(rows)),
            Text(
                f"Final accuracies at batch size {r.spec.batch_size} after {r.steps_done} steps; GroupNorm "
                f"uses G = {r.groups_used} in the first layer.",
                "caption",
            ),
        ]
    if part.experiment == "norm_cost":
        busy = [Text(r.busy_note(), "warning")] if final and r.busy_note() else []
        return [Chart("alt-cost", figs.cost_bars(r, font), CAPTIONS["cost"]), *busy] + (
            [Text(explain(r))] if final else []
        )
    if part.experiment == "sync_bn":
        return [Chart("alt-sync", figs.sync_figure(r, font), CAPTIONS["sync-bn"])] + [
            Text(m, "warning") for m in r.messages()
        ]
    out = [Chart("alt-rnn", figs.rnn_curves(r, font), CAPTIONS["rnn"])]
    if final:
        out += [
            Chart("alt-rnn-stats", figs.rnn_bn_stats(r, font), CAPTIONS["rnn-stats"]),
            Text("**A 16-step sequence with per-step BN**, as RowRNN answers it:"),
            Text(r.refusal, "code"),
            Chart("alt-rnn-long", figs.rnn_long(r, font), CAPTIONS["rnn-long"]),
            Text(r.long_note()),
        ]
    return out
