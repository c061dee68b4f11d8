"""Gates: named thresholds checked all at once; every rule is reported, not only the first failure."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from tasks.config import GateRule


@dataclass(frozen=True)
class GateResult:
    name: str
    value: float | None
    threshold: float
    op: str
    passed: bool
    severity: str = "fail"

    def reason(self) -> str:
        shown = "missing" if self.value is None else f"{self.value:.4g}"
        relation = self.op if self.passed else {">=": "<", "<=": ">"}[self.op]
        return f"{self.name} {shown} {relation} {self.threshold:.4g}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    results: tuple[GateResult, ...]

    @property
    def reasons(self) -> list[str]:
        return [r.reason() for r in self.results if not r.passed and r.severity == "fail"]

    @property
    def warnings(self) -> list[str]:
        return [r.reason() for r in self.results if not r.passed and r.severity == "warn"]


def check_rule(rule: GateRule, metrics: dict[str, float]) -> GateResult:
    value = metrics.get(rule.metric)
    if value is not None and math.isnan(value):
        value = None
    if rule.min is not None:
        return GateResult(rule.metric, value, rule.min, ">=", value is not None and value >= rule.min, rule.severity)
    assert rule.max is not None  # GateRule guarantees exactly one bound
    return GateResult(rule.metric, value, rule.max, "<=", value is not None and value <= rule.max, rule.severity)


def evaluation_gate(rules: tuple[GateRule, ...], metrics: dict[str, float]) -> GateDecision:
    """Absolute thresholds on test metrics. Warn-severity rules are reported but never block."""
    results = tuple(check_rule(rule, metrics) for rule in rules)
    return GateDecision(all(r.passed for r in results if r.severity == "fail"), results)
