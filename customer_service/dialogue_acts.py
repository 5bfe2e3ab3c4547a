"""Dialogue acts: greetings, thanks, goodbyes, yes/no and requests for a person.

An act is recognised by a small classifier trained with the bot: a multinomial logistic
regression over the bot's own sentence embeddings (the vector the message is embedded into
anyway), with one class per act and a `none` class learnt from the bot's training questions.
Its examples are configurable (`dialogue.act_examples`, a `dialogue_acts.csv` data file); the
weights live in the artifact as safetensors, the labels and threshold in `bot.json`.

The `none` class also sees questions with a greeting or thanks in front ("hi, my card was
stolen") and short follow-ups built from the slot values ("and for my credit card?"), so a
question wrapped in politeness is still read as a question.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NONE = "none"
HUMAN = "human"  # the act that always hands off
DEFAULT_ACT_EXAMPLES: dict[str, list[str]] = {
    "greet": [
        "hello", "hi", "hey", "hi there", "hello there", "hey there", "good morning",
        "good afternoon", "good evening", "hiya", "greetings", "howdy", "morning", "hello bot",
        "hi, is anyone there?", "hey, how are you?", "hello!", "good day", "hi hi", "yo",
    ],
    "thank": [
        "thanks", "thank you", "thank you very much", "thanks a lot", "ok thanks",
        "okay, thank you", "great, thanks", "cheers", "thanks, that helps",
        "that's helpful, thank you", "perfect, thanks", "much appreciated", "thx", "ty",
        "brilliant, thank you", "thanks for your help", "many thanks", "awesome thanks",
        "thank you so much", "ok cool thanks",
    ],
    "goodbye": [
        "bye", "goodbye", "bye bye", "see you", "see you later", "thanks, bye",
        "thank you, goodbye", "that's all, bye", "have a nice day", "that's everything, goodbye",
        "I'm done, bye", "talk to you later", "good night", "cya", "ok bye", "that is all for today",
        "nothing else, bye", "farewell", "thanks and goodbye", "bye for now",
    ],
    "affirm": [
        "yes", "yes please", "yeah", "yep", "sure", "correct", "that's right", "exactly", "ok",
        "okay", "sounds good", "of course", "absolutely", "right", "yes that's it", "indeed",
        "definitely", "that works", "y", "yes it is",
    ],
    "deny": [
        "no", "no thanks", "nope", "not really", "no, that's not it", "that's wrong", "not that",
        "no that's not what I meant", "never mind", "nah", "no it isn't", "not at all",
        "wrong answer", "that didn't help", "no, something else", "n", "no way", "incorrect",
    ],
    HUMAN: [
        "agent please", "can I talk to a human", "I want to speak to a person",
        "let me talk to a real person", "connect me to an agent", "human please",
        "speak to a representative", "I need a human", "transfer me to a person",
        "is there a real person I can talk to", "get me a live agent", "operator",
        "put me through to someone", "I'd like to chat with a human agent",
        "talk to a member of staff", "can I speak with someone from your team",
        "stop the bot, I want a person", "real human please", "I want to talk to an agent",
        "customer service representative please",
    ],
}  # fmt: skip
DEFAULT_REPLIES: dict[str, str] = {
    "greet": "Hello! How can I help you today?",
    "thank": "You're welcome! Is there anything else I can help with?",
    "goodbye": "Goodbye, and thank you for getting in touch!",
    "affirm": "Great. What else can I help you with?",
    "deny": "All right. What else can I help you with?",
    HUMAN: "Of course. I'm passing you to a colleague now; they will see our conversation so far.",
    "ask_slot": "Which {slot} do you mean: {options}?",
}
# What precedes a question in the `none` class's augmented examples, and how a follow-up starts.
_POLITE_ACTS = ("greet", "thank", "affirm", "deny")
_FOLLOW_UPS = ("and for my {v}?", "what about my {v} one", "and the {v}?", "same for {v}")


@dataclass
class ActClassifier:
    """Softmax over acts (and `none`) from one normalised (D,) embedding.

    Attributes:
        labels: (A,) class names; one of them is `none`.
        weight: (A, D) logistic-regression weights.
        bias: (A,) intercepts.
        threshold: The least probability an act needs to be taken; below it the message is
            read as a question.
        cv_accuracy: Accuracy on held-out examples under stratified 5-fold cross-validation
            of the training texts (acts and `none`, each read by the same threshold rule);
            None when a class has too few examples to fold.
    """

    labels: list[str]
    weight: np.ndarray
    bias: np.ndarray
    threshold: float = 0.5
    cv_accuracy: float | None = None

    def probabilities(self, vector: np.ndarray) -> np.ndarray:
        """(A,) class probabilities of one embedding."""
        z = self.weight @ np.asarray(vector, dtype=np.float32) + self.bias
        z = np.exp(z - z.max())
        return z / z.sum()

    def classify(self, vector: np.ndarray) -> tuple[str | None, float]:
        """The act of a message and its probability; `(None, p)` for a question (or a weak act)."""
        p = self.probabilities(vector)
        best = int(p.argmax())
        label = self.labels[best]
        if label == NONE or p[best] < self.threshold:
            return None, float(p[best])
        return label, float(p[best])

    def state_dict(self) -> dict[str, Any]:
        """The weights as tensors, for `shared.artifacts.save_weights` (safetensors)."""
        import torch

        return {"weight": torch.from_numpy(self.weight), "bias": torch.from_numpy(self.bias)}

    @classmethod
    def load(cls, path: Path, labels: list[str], threshold: float) -> ActClassifier:
        """Reads weights written by `state_dict` (safetensors, never a pickle)."""
        from shared.artifacts import load_weights

        state = load_weights(path)
        return cls(
            list(labels),
            state["weight"].float().numpy(),
            state["bias"].float().numpy(),
            threshold,
        )


def negative_examples(
    questions: Sequence[str],
    act_examples: dict[str, list[str]],
    slot_values: dict[str, list[str]],
    seed: int = 0,
    n_prefixed: int = 150,
) -> list[str]:
    """Texts of the `none` class: the questions, polite prefixes before them, slot follow-ups."""
    rng = random.Random(seed)
    questions = list(dict.fromkeys(questions))
    out = list(questions)
    polite = [e for act in _POLITE_ACTS for e in act_examples.get(act, [])]
    if polite and questions:
        for q in rng.sample(questions, min(n_prefixed, len(questions))):
            out.append(f"{rng.choice(polite).rstrip('!?.')}, {q}")
    for values in slot_values.values():
        out += [pattern.format(v=v) for v in values for pattern in _FOLLOW_UPS]
    return out


def train_act_classifier(
    embed: Callable[[list[str]], np.ndarray],
    act_examples: dict[str, list[str]],
    negatives: Sequence[str],
    threshold: float = 0.5,
    regularization: float = 10.0,
    seed: int = 0,
) -> ActClassifier | None:
    """Fits the classifier on the act examples and the `none` texts; None without act examples.

    Args:
        embed: Texts -> (N, D) normalised embeddings (the bot's encoder).
        act_examples: Act name -> example messages (acts with no examples are left out).
        negatives: Messages that are no act (see `negative_examples`).
        threshold: Least probability for an act (stored with the weights).
        regularization: Inverse L2 strength `C` of the logistic regression; embeddings are
            unit vectors, so a weak penalty lets the weights grow to separate them.
        seed: Seed of the solver (lbfgs is deterministic; kept for other solvers).
    """
    from sklearn.linear_model import LogisticRegression

    acts = {a: list(dict.fromkeys(e)) for a, e in act_examples.items() if e}
    if not acts:
        return None
    texts = [t for examples in acts.values() for t in examples]
    labels = [a for a, examples in acts.items() for _ in examples]
    known = set(texts)
    negatives = [t for t in dict.fromkeys(negatives) if t not in known]
    texts += negatives
    labels += [NONE] * len(negatives)
    classes = sorted(set(labels))
    y = np.array([classes.index(label) for label in labels])
    model = LogisticRegression(
        C=regularization, max_iter=2000, class_weight="balanced", random_state=seed
    )
    features = np.asarray(embed(texts), dtype=np.float64)
    cv_accuracy = _cv_accuracy(model, features, y, classes.index(NONE), threshold, seed)
    model.fit(features, y)
    weight, bias = model.coef_.astype(np.float32), model.intercept_.astype(np.float32)
    if len(classes) == 2:  # a binary fit has one row: make it a two-class softmax
        weight = np.stack([-weight[0] / 2, weight[0] / 2])
        bias = np.array([-bias[0] / 2, bias[0] / 2], dtype=np.float32)
    return ActClassifier(classes, np.ascontiguousarray(weight), bias, threshold, cv_accuracy)


def _cv_accuracy(model, features, y, none_index: int, threshold: float, seed: int) -> float | None:
    """Held-out accuracy of the act rule (argmax act if its probability reaches `threshold`,
    else `none`) under stratified 5-fold CV; None when a class has fewer than 5 examples."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if np.bincount(y).min() < 5:
        return None
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    probs = cross_val_predict(clone(model), features, y, cv=folds, method="predict_proba")
    pred = probs.argmax(1)
    pred = np.where((pred != none_index) & (probs.max(1) < threshold), none_index, pred)
    return float((pred == y).mean())


def merge_examples(
    examples: dict[str, list[str]], replies: dict[str, str], table: Any = None
) -> dict[str, list[str]]:
    """The config's act examples plus those of a `dialogue_acts` table (`text, act` rows).

    Raises:
        DataError: naming the file and row of an act that has no configured reply.
    """
    from shared.errors import DataError

    merged = {act: list(texts) for act, texts in examples.items()}
    if table is None or len(table) == 0:
        return merged
    source = table.attrs.get("source", "dialogue_acts")
    for i, (text, act) in enumerate(zip(table["text"], table["act"], strict=True)):
        act = str(act).strip()
        if act not in replies or act == "ask_slot":
            known = ", ".join(sorted(a for a in replies if a != "ask_slot"))
            raise DataError(
                f"{source}: row {i + 1}, column 'act': {act!r} has no reply; known acts: {known} "
                f"(or add dialogue.replies.{act} to the config)"
            )
        merged.setdefault(act, []).append(str(text).strip())
    return merged


def fit_bot_acts(
    embed: Callable[[list[str]], np.ndarray],
    dialogue: Any,
    acts_table: Any,
    questions: Sequence[str],
    slot_values: dict[str, list[str]],
    seed: int = 0,
) -> ActClassifier | None:
    """The bot's act classifier: `dialogue` (a `DialogueConfig`) examples and the data file's,
    against the bot's own questions (training and out-of-scope validation ones) as `none`."""
    examples = merge_examples(dialogue.act_examples, dialogue.replies, acts_table)
    negatives = negative_examples(questions, examples, slot_values, seed)
    return train_act_classifier(
        embed, examples, negatives, dialogue.act_threshold, dialogue.act_regularization, seed
    )
