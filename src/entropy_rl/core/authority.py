"""A knob's authority over the entropy, measured online, and the 'pi' rule's gains from it.

The entropy change a step's updates make is dH_t = d_t + c * value_t: d_t is the drift the
policy gradient gives on its own (slow: the collapse) and c what one unit of the knob adds.
dH_t is the Lemma-1 probe's exact change (`dynamics/dH_actual`: the mean change, over the
step's updates, of the token entropy on the probe states, the same states before and after),
so it carries no batch-to-batch sampling noise. The batch entropy's own step-to-step change
would: the rule sets the knob from the batch's measured entropy, so the batch's sampling
error sits in both the knob and the change, and a regression on it is biased several times
upwards (docs/results.md, "Gains from the knob's measured authority").

c is the slope of an exponentially weighted least-squares fit of dH on the knob's value with
an intercept (the drift), over a half-life of `AUTHORITY_HALF_LIFE` steps. The fit is linear
in the value, not in its log: on the embedded task the bonus's c was 0.03-0.05 on 11 of 12
runs over two targets, a schedule and two sets of gains, while a slope on log(value) shrinks
as the knob swings wider (the bonus at 1/100 of its working value does nothing). A first
version fitted on log(value): its authority shrank as the swings widened, which raised its
gains and widened the swings further.

The rule works on log(value), so the authority it sees is g = c * value at its operating
point, the entropy change per step per unit of log value. The point is the strength that
holds the entropy, v* = -d / c, where the knob cancels the drift: there g = c * v* = -d, the
rate at which the entropy would fall without the knob. The fit's intercept gives it, so
the gains do not follow the knob's own swings (taking the integral's strength as the point
instead fed back: a swing down made g small, the gains large and the next swing wider).
With g, the loop of `core.control` ("Why this form" 6) is x' = (1 - k1) x + g J,
(g J)' = g J - k2 x with k1 = g kp / target, k2 = g ki / target. `loop_gains` sets kp and ki
so that its two poles sit at `pole` (critically damped: k1 = 2 (1 - pole), k2 = (1 - pole)^2):
the same damping at any target, with no gain to tune, for a knob whose effect is about linear
in its value. A knob that saturates is not seen as such: on the embedded task KL-Cov's
coefficient had almost no marginal effect once large, and still wound up (docs/results.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

AUTHORITY_HALF_LIFE = 25.0
"""Steps after which an observation of the fit weighs half."""
AUTHORITY_MIN_WEIGHT = 10.0
"""The fit's total weight (about its number of steps) before its slope is used."""
AUTHORITY_MIN_SPREAD = 0.05
"""The least spread of the knob's value over the fit for a slope (its standard deviation
over its mean): a knob that has not moved says nothing of its authority."""
GAIN_RANGE = 8.0
"""The gains `loop_gains` gives stay within [1/this, this] times the configured ones."""


@dataclass(frozen=True)
class AuthorityFit:
    """Exponentially weighted sums of the fit of dH (y) on the knob's value (x)."""

    weight: float = 0.0
    x: float = 0.0
    y: float = 0.0
    xx: float = 0.0
    xy: float = 0.0

    def observe(self, value: float, change: float) -> AuthorityFit:
        """The fit with one more step: the knob at `value`, the entropy change `change`;
        older steps weigh 0.5 ** (1 / AUTHORITY_HALF_LIFE) less."""
        keep = 0.5 ** (1.0 / AUTHORITY_HALF_LIFE)
        x, y = value, change
        return AuthorityFit(
            keep * self.weight + 1.0,
            keep * self.x + x,
            keep * self.y + y,
            keep * self.xx + x * x,
            keep * self.xy + x * y,
        )

    def line(self) -> tuple[float, float] | None:
        """(d, c): the fit's intercept (the drift) and slope (the entropy change per step
        per unit of the knob's value); None before the fit has AUTHORITY_MIN_WEIGHT or while
        the value has spread under AUTHORITY_MIN_SPREAD."""
        if self.weight < AUTHORITY_MIN_WEIGHT:
            return None
        mean_x, mean_y = self.x / self.weight, self.y / self.weight
        var = self.xx / self.weight - mean_x * mean_x
        if var <= (AUTHORITY_MIN_SPREAD * mean_x) ** 2:
            return None
        slope = (self.xy / self.weight - mean_x * mean_y) / var
        return mean_y - slope * mean_x, slope

    def authority(self) -> float | None:
        """g at the strength that holds the entropy: -d when the knob raises the entropy
        (c > 0) against a drift that lowers it (d < 0); else None (no such strength)."""
        fitted = self.line()
        if fitted is None or not (fitted[1] > 0 and fitted[0] < 0):
            return None
        return -fitted[0]


def loop_gains(
    pole: float, target: float, authority: float | None, kp: float, ki: float
) -> tuple[float, float]:
    """The 'pi' rule's (kp, ki) that put both of the loop's poles at `pole` for a knob of
    `authority` g at `target`: kp = 2 (1 - pole) target / g, ki = (1 - pole)^2 target / g,
    each within [1/GAIN_RANGE, GAIN_RANGE] times the configured `kp`, `ki`. Without a
    positive authority (not measured yet, or the knob seen to lower the entropy), the
    configured gains."""
    if authority is None or not math.isfinite(authority) or authority <= 0:
        return kp, ki
    scale = target / authority
    return (
        _within(2.0 * (1.0 - pole) * scale, kp),
        _within((1.0 - pole) ** 2 * scale, ki),
    )


def _within(value: float, configured: float) -> float:
    return min(max(value, configured / GAIN_RANGE), configured * GAIN_RANGE)
