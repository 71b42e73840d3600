"""``boxloop aws status``'s audit line: what the audits measured, under the promise."""

from __future__ import annotations

from boxloop.aws.operate.status import audit_text
from boxloop.core.decision import Estimate


def _estimate(right: int, n: int) -> dict:
    return Estimate(
        images=n, image_accuracy=right / n, image_interval=(0.5, 0.99), level=0.9
    ).to_json()


PROMISE = {"metric": "exact_match", "target": 0.9, "confidence_level": 0.8}


def test_no_audit_yet_says_nothing() -> None:
    assert audit_text(None) is None
    assert audit_text({}) is None
    assert audit_text({"total": Estimate().to_json(), "delivered": Estimate().to_json()}) is None


def test_applied_audits_give_the_delivered_accuracy_and_the_promise() -> None:
    block = {"promise": PROMISE, "total": _estimate(26, 30), "delivered": _estimate(23, 27)}
    text = audit_text(block)
    assert text is not None
    assert text.startswith("85.2% exact match over 27 applied auto-labels")
    assert "90% interval [50.0%, 99.0%]" in text
    assert "promised exact match >= 0.9 with 80% probability" in text


def test_would_be_audits_alone_are_named_as_such() -> None:
    block = {"promise": PROMISE, "total": _estimate(9, 10), "delivered": Estimate().to_json()}
    assert audit_text(block) == (
        "90.0% over 10 would-be auto-labels re-labeled by humans at random, "
        "90% interval [50.0%, 99.0%]"
    )
