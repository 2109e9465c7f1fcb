"""The tests' smallest synthetic data set, shared by the training tests."""
from __future__ import annotations

from pathlib import Path

from slsdk.data.synthetic import generate_synthetic


def tiny_synthetic(root: Path, *, seed: int = 0, image_size: int = 32, test_si_per_signer: int = 2) -> Path:
    """The tests' smallest synthetic data set (4 glosses, 3 signers, PNG frames) written at ``root``."""
    return generate_synthetic(root, seed=seed, num_glosses=4, num_signers=3, num_test_si_signers=1,
                              sentences_per_signer=4, num_train_sentences=6, num_test_us_sentences=1,
                              dev_per_signer=1, test_si_per_signer=test_si_per_signer, test_us_per_sentence=1,
                              image_size=image_size, min_len=1, max_len=2, video_format="png")
