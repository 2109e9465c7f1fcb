"""The split plan of a synthetic data set: which signer signs which sentence in which split (Isharah-style
train / dev / test_si / test_us), drawn without rendering."""
from __future__ import annotations

import numpy as np


def _sentences(rng, n_glosses: int, count: int, min_len: int, max_len: int) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    seen = set()
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > 1000 * count:
            raise ValueError(f"cannot draw {count} distinct sentences of {min_len}-{max_len} glosses "
                             f"from {n_glosses} glosses")
        n = int(rng.integers(min_len, max_len + 1))
        seq = [int(rng.integers(n_glosses))]
        while len(seq) < n:
            g = int(rng.integers(n_glosses))
            if g != seq[-1]:
                seq.append(g)
        t = tuple(seq)
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


def make_plan(*, seed: int = 0, num_glosses: int = 12, num_signers: int = 8, sentences_per_signer: int = 56,
              num_test_si_signers: int = 2, num_train_sentences: int = 64, num_test_us_sentences: int = 10,
              dev_per_signer: int = 7, test_si_per_signer: int = 20, test_us_per_sentence: int = 4,
              min_len: int = 2, max_len: int = 6) -> list[tuple[str, int, int, tuple[int, ...]]]:
    """The split plan without rendering: ``[(split, signer, sentence_index, gloss_indices)]``.

    Signers ``num_signers - num_test_si_signers ..`` are held out (test_si); sentences
    ``num_train_sentences ..`` are held out (test_us).
    """
    n_train_signers = num_signers - num_test_si_signers
    if n_train_signers < 1 or num_test_si_signers < 0:
        raise ValueError(f"need at least one training signer: num_signers={num_signers}, "
                         f"num_test_si_signers={num_test_si_signers}")
    if sentences_per_signer > num_train_sentences:
        raise ValueError(f"sentences_per_signer ({sentences_per_signer}) > num_train_sentences ({num_train_sentences})")
    if max_len < min_len or min_len < 1:
        raise ValueError(f"bad sentence lengths min_len={min_len}, max_len={max_len}")
    rng = np.random.default_rng([seed, 3])
    for _attempt in range(100):
        pool = _sentences(rng, num_glosses, num_train_sentences + num_test_us_sentences, min_len, max_len)
        train_pool, us_pool = pool[:num_train_sentences], pool[num_train_sentences:]
        if len({g for s in train_pool for g in s}) == num_glosses:
            break
    else:  # pragma: no cover - only with absurd settings
        raise ValueError("could not draw training sentences that cover every gloss; raise num_train_sentences")
    train_signers = list(range(n_train_signers))
    si_signers = list(range(n_train_signers, num_signers))
    plan: list[tuple[str, int, int, tuple[int, ...]]] = []
    perms = [rng.permutation(num_train_sentences) for _ in train_signers]
    seen_set = {int(j) for perm in perms for j in perm[:sentences_per_signer]}
    for s, perm in zip(train_signers, perms):
        for j in sorted(perm[:sentences_per_signer]):
            plan.append(("train", s, int(j), train_pool[j]))
        # dev: sentences seen in training (by other signers), new for this signer
        rest = [j for j in perm[sentences_per_signer:] if int(j) in seen_set]
        for j in sorted(rest[:dev_per_signer]):
            plan.append(("dev", s, int(j), train_pool[j]))
    seen = np.array(sorted(seen_set))  # test_si: sentences seen in training, by held-out signers
    for s in si_signers:
        for j in sorted(rng.permutation(seen)[:test_si_per_signer]):
            plan.append(("test_si", s, int(j), train_pool[j]))
    for k, sent in enumerate(us_pool):
        for s in sorted(rng.choice(train_signers, size=min(test_us_per_sentence, len(train_signers)), replace=False)):
            plan.append(("test_us", int(s), num_train_sentences + k, sent))
    return plan
