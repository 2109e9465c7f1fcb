"""CSLR sequence model (VAC / CorrNet layout) and its losses.

`SequenceModel`: temporal conv "K5-P2-K5-P2" (Conv1d k5 without padding + BN + ReLU, MaxPool k2 s2, twice:
x4 downsampling) -> 2-layer BiLSTM over packed sequences -> ONE gloss classifier shared by the conv branch
and the LSTM branch. Outputs are time-major `[T', B, V]`; blank id is 0.

`cslr_losses`: CTC on the LSTM branch, CTC on the conv branch (VAC's auxiliary visual-alignment CTC) and
distillation conv <- sequence (VAC / SMKD: KL between temperature-softened distributions, blank column
excluded, teacher detached, scaled by T^2). Every term is a per-sample quantity averaged over the batch (the
distill term optionally over all rows incl. padding instead, as released: ``distill_reduction="reference"``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class NormLinear(nn.Module):
    """Bias-free linear layer with unit-norm class columns: ``x @ normalize(weight, dim=0)``.

    ``weight`` is ``[in_features, num_classes]`` (AdaptSign / VAC's weight-normalised classifier).
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        nn.init.xavier_uniform_(self.weight, gain=nn.init.calculate_gain("relu"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, F.normalize(self.weight, dim=0))


def _parse_conv_type(conv_type: str) -> list[tuple[str, int]]:
    ops = []
    for tok in conv_type.split("-"):
        kind, size = tok[0], int(tok[1:])
        if kind not in "KP":
            raise ValueError(f"conv_type tokens are K<kernel> or P<pool>, got {tok!r} in {conv_type!r}")
        ops.append((kind, size))
    return ops


class SequenceModel(nn.Module):
    """features [B, T, D] + lengths [B] -> dict(conv_logits, sequence_logits [T', B, V], feat_lengths [B])."""

    def __init__(self, input_dim: int, hidden: int = 1024, num_classes: int = 1296,
                 conv_type: str = "K5-P2-K5-P2", lstm_layers: int = 2, weight_norm: bool = False):
        super().__init__()
        self.conv_type = conv_type
        self.ops = _parse_conv_type(conv_type)
        layers: list[nn.Module] = []
        ch = input_dim
        for kind, size in self.ops:
            if kind == "K":
                layers += [nn.Conv1d(ch, hidden, size, stride=1, padding=0), nn.BatchNorm1d(hidden),
                           nn.ReLU(inplace=True)]
                ch = hidden
            else:
                layers.append(nn.MaxPool1d(size, stride=size, ceil_mode=False))
        self.temporal_conv = nn.Sequential(*layers)
        if hidden % 2:
            raise ValueError(f"hidden must be even for a BiLSTM, got {hidden}")
        self.lstm = nn.LSTM(hidden, hidden // 2, num_layers=lstm_layers, bidirectional=True, batch_first=False)
        # shared by both branches; weight_norm: the weight-normalised classifier of AdaptSign / VAC
        self.classifier = NormLinear(hidden, num_classes) if weight_norm else nn.Linear(hidden, num_classes)
        self.num_classes = num_classes

    @staticmethod
    def output_length(t, conv_type: str = "K5-P2-K5-P2"):
        """Frames after the temporal conv for an input of `t` frames (int or integer tensor)."""
        for kind, size in _parse_conv_type(conv_type):
            t = t - (size - 1) if kind == "K" else t // size
        return t

    def min_input_length(self) -> int:
        """Smallest clip length that yields at least one output frame."""
        t = 1
        while self.output_length(t, self.conv_type) < 1:
            t += 1
        return t

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t, _ = features.shape
        lengths = lengths.to(torch.long).cpu()
        feat_lengths = self.output_length(lengths, self.conv_type)
        if not torch.compiler.is_compiling() and bool((feat_lengths < 1).any()):
            bad = [(i, int(lengths[i])) for i in torch.nonzero(feat_lengths < 1).flatten().tolist()]
            raise ValueError(f"clips too short for the temporal conv {self.conv_type} (need >= "
                             f"{self.min_input_length()} frames): (sample, frames) = {bad}")
        x = self.temporal_conv(features.transpose(1, 2))                # [B, C, T']
        x = x.permute(2, 0, 1)                                          # [T', B, C]
        conv_logits = self.classifier(x)
        packed = pack_padded_sequence(x, feat_lengths, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, total_length=x.shape[0])
        sequence_logits = self.classifier(out)
        return {"conv_logits": conv_logits, "sequence_logits": sequence_logits,
                "feat_lengths": feat_lengths.to(features.device)}


def required_ctc_length(label: torch.Tensor | list[int]) -> int:
    """Frames CTC needs for `label`: its length plus one blank between each pair of equal neighbours."""
    lab = [int(v) for v in label]
    return len(lab) + sum(1 for a, b in zip(lab, lab[1:]) if a == b)


def check_ctc_lengths(feat_lengths: torch.Tensor, labels: torch.Tensor, label_lengths: torch.Tensor) -> None:
    """Raise ValueError naming every sample whose output is too short for its label."""
    bad = []
    offset = 0
    for i, (fl, ll) in enumerate(zip(feat_lengths.tolist(), label_lengths.tolist())):
        need = required_ctc_length(labels[offset:offset + ll].tolist())
        offset += ll
        if fl < need:
            bad.append(f"sample {i}: {fl} output frames < {need} needed for {ll} labels")
    if bad:
        raise ValueError("CTC input too short (clip too short for its gloss sequence after x4 temporal "
                         "downsampling): " + "; ".join(bad))


def _ctc(logits: torch.Tensor, labels, feat_lengths, label_lengths, blank: int) -> torch.Tensor:
    lp = logits.log_softmax(-1)
    per = F.ctc_loss(lp.float(), labels, feat_lengths, label_lengths, blank=blank, reduction="none",
                     zero_infinity=False)
    return per.mean()


DISTILL_REDUCTIONS = ("masked", "reference")


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, feat_lengths: torch.Tensor,
                      temperature: float = 8.0, blank: int | None = 0, reduction: str = "masked") -> torch.Tensor:
    """KL(teacher || student) on softened distributions over the non-blank classes, x T^2. Teacher is detached.

    ``reduction`` says how the per-frame KL of the ``[T', B]`` time-major batch is averaged:

    * ``"masked"`` (slsdk's default): over each sample's valid frames (``feat_lengths``), then over samples;
      padding never counts and every clip weighs the same whatever its length. A deliberate change from the
      released code, so that the term does not depend on how a clip was batched.
    * ``"reference"``: over all ``T' * B`` rows, padded frames included (VAC / AdaptSign ``SeqKD``:
      ``KLDivLoss(reduction="batchmean")`` on the flattened rows), as released.

    Both equal when every clip in the batch has the same length.
    """
    if reduction not in DISTILL_REDUCTIONS:
        raise ValueError(f"distillation reduction must be one of {DISTILL_REDUCTIONS}, got {reduction!r}")
    tmax, b, v = student_logits.shape
    keep = [c for c in range(v) if c != blank] if blank is not None else list(range(v))
    idx = torch.tensor(keep, device=student_logits.device)
    wide = torch.promote_types(student_logits.dtype, torch.float32)      # a small KL: never in half precision
    s = student_logits.index_select(-1, idx).to(wide) / temperature
    te = teacher_logits.detach().index_select(-1, idx).to(wide) / temperature
    log_s = s.log_softmax(-1)
    log_t = te.log_softmax(-1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)                       # [T', B]
    if reduction == "reference":
        return kl.mean() * temperature ** 2
    fl = feat_lengths.to(student_logits.device)
    mask = (torch.arange(tmax, device=kl.device)[:, None] < fl[None]).to(kl.dtype)
    per = (kl * mask).sum(0) / fl.clamp(min=1).to(kl.dtype)
    return per.mean() * temperature ** 2


def cslr_losses(out: dict, labels: torch.Tensor, label_lengths: torch.Tensor,
                weights: dict | None = None, temperature: float = 8.0, blank: int = 0,
                distill_reduction: str = "masked") -> dict[str, torch.Tensor]:
    """Weighted CSLR losses for a `SequenceModel` output.

    labels: all samples' gloss ids concatenated (1D); label_lengths [B]. weights keys: seq_ctc, conv_ctc,
    distill (defaults 1, 1, 25 as VAC). ``temperature`` / ``distill_reduction``: of the distill term (see
    `distillation_loss`). Returns the unweighted terms and `total` (weighted sum).
    """
    w = {"seq_ctc": 1.0, "conv_ctc": 1.0, "distill": 25.0}
    if weights:
        w.update(weights)
    labels = labels.to(torch.long).cpu()
    label_lengths = label_lengths.to(torch.long).cpu()
    feat_lengths = out["feat_lengths"].to(torch.long).cpu()
    if labels.numel() != int(label_lengths.sum()):
        raise ValueError(f"labels has {labels.numel()} ids but label_lengths sums to {int(label_lengths.sum())}")
    check_ctc_lengths(feat_lengths, labels, label_lengths)
    seq, conv = out["sequence_logits"], out["conv_logits"]
    dev = seq.device
    terms: dict[str, torch.Tensor] = {}
    if w.get("seq_ctc", 0):
        terms["seq_ctc"] = _ctc(seq, labels.to(dev), feat_lengths, label_lengths, blank)
    if w.get("conv_ctc", 0):
        terms["conv_ctc"] = _ctc(conv, labels.to(dev), feat_lengths, label_lengths, blank)
    if w.get("distill", 0):
        terms["distill"] = distillation_loss(conv, seq, feat_lengths, temperature, blank, distill_reduction)
    total = sum(w[k] * v for k, v in terms.items())
    terms["total"] = total
    return terms


__all__ = ["SequenceModel", "NormLinear", "cslr_losses", "distillation_loss", "DISTILL_REDUCTIONS",
           "required_ctc_length", "check_ctc_lengths"]
