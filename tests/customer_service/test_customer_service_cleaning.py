from __future__ import annotations

import pytest

from customer_service.cleaning import dedupe, mask_pii, normalise


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111 please", "card [CARD] please"),
        ("card 4111-1111-1111-1111", "card [CARD]"),
        ("write to jo.doe+x@example.co.uk now", "write to [EMAIL] now"),
        ("call +44 20 7946 0958 today", "call [PHONE] today"),
        ("call 555-123-4567", "call [PHONE]"),
        ("IBAN GB82 WEST 1234 5698 7654 32", "IBAN [ACCOUNT]"),
        ("account 12345678 is mine", "account [ACCOUNT] is mine"),
    ],
)
def test_mask_pii_replaces_personal_data(text, expected):
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    "text", ["paid 25 euros on 2024-01-05 at 10:30", "my pin has 4 digits: 1234", "1,000.50 EUR"]
)
def test_mask_pii_leaves_dates_amounts_and_short_numbers(text):
    assert mask_pii(text) == text


def test_normalise_folds_case_accents_and_punctuation():
    assert normalise("  Héllo,   WORLD!! ") == "hello world"


def test_dedupe_removes_exact_and_near_duplicates_of_the_same_answer_only():
    texts = [
        "How do I freeze my card?",  # kept
        "how do i freeze my card",  # exact after normalising
        "How do I freeze my card pls?",  # near duplicate
        "How do I freeze my card?",  # same text, other answer: a conflict, not a duplicate
        "What is my balance",  # different
    ]
    keep = dedupe(texts, keys=["a", "a", "a", "b", "a"])
    assert keep.tolist() == [0, 3, 4]


def test_dedupe_without_keys_and_threshold_one_keeps_near_duplicates():
    texts = ["open an account", "open an account!", "open an account now please"]
    assert dedupe(texts).tolist() == [0, 2]
    assert dedupe(texts, threshold=1.0).tolist() == [0, 2]


def test_clean_pairs_keeps_held_out_rows_whole_and_dedupes_the_rest():
    import pandas as pd

    from customer_service.training import clean_pairs

    q = "How do I reset my PIN?"
    pairs = pd.DataFrame(
        {
            "question": [q, q + "!", q, q, "Where is my card?"],
            "answer_id": ["pin"] * 4 + ["card"],
            "intent": ["pin"] * 4 + ["card"],
            "split": ["train", "", "test", "test", "val"],
        }
    )
    out = clean_pairs(pairs)
    # the unsplit near-copy of a training row goes; both test copies and the val row stay
    assert list(out["split"]) == ["train", "test", "test", "val"]
