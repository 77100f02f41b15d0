"""ISO 8601 durations as the templates write them (``PT8H``, ``P10D``, ``P1M``...).

Only the integer designators the template meta-schema allows: years, months, weeks,
days, hours, minutes, seconds (no fractions, no negative durations).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from broker.errors import TemplateError

_ISO_DURATION = re.compile(
    r"P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?"
)
# No legal time limit comes near 10,000 years, months, weeks or days (nor 10^7 h, min, s).
_LIMITS = (10_000,) * 4 + (10_000_000,) * 3


@dataclass(frozen=True)
class IsoDuration:
    """A parsed duration: nominal parts (years to days) and an exact time part."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    @classmethod
    def parse(cls, text: str) -> IsoDuration:
        """Parse ``text`` (e.g. ``P60D``, ``PT96H``, ``P1M``).

        Raises:
            TemplateError: code ``TEMPLATE_DEFINITION_INVALID``: not such a duration.
        """
        match = _ISO_DURATION.fullmatch(text)
        if match is None:
            raise TemplateError(
                f"{text!r} is not an ISO 8601 duration such as PT8H, P10D or P1M",
                code="TEMPLATE_DEFINITION_INVALID",
            )
        parts = [int(g) if g else 0 for g in match.groups()]
        if any(p > limit for p, limit in zip(parts, _LIMITS, strict=True)):
            raise TemplateError(
                f"duration {text!r} is out of range", code="TEMPLATE_DEFINITION_INVALID"
            )
        return cls(*parts)

    @property
    def day_based(self) -> bool:
        """Whether it counts calendar units (years to days), in local time."""
        return bool(self.years or self.months or self.weeks or self.days)

    @property
    def exact(self) -> timedelta:
        """The time part (hours, minutes, seconds): elapsed time, whatever the clocks say."""
        return timedelta(hours=self.hours, minutes=self.minutes, seconds=self.seconds)
