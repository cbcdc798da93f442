"""The exact bridge from a token distribution to binary decisions on bytes.

Why: models with different tokenizers (SmolLM2, gemma3-270m) and byte-level context models
(bytecm) predict different things.  To mix them, each must say how likely the next *bit* of
the text is.  A token model says how likely the next *token* is; this module turns that into
bit decisions without losing anything.

How: sort the vocabulary by byte spelling.  Then "the tokens whose spelling starts with
``p``" is a contiguous range of the sorted order for every byte prefix ``p``, and a token is
coded as a walk down the byte trie, starting with every token that has a spelling:

* at depth ``d >= 1`` (the token's first ``d`` bytes known), if some token spells exactly
  those ``d`` bytes: **END**, "the token is one of those" (asked only when a longer token
  continues the prefix too), then, when several tokens share that spelling, **CHOICE**
  decisions halving that run until one token is left;
* otherwise the next byte, as its **BIT** decisions, most significant first: "is the byte
  ``>= m``", for the midpoint ``m`` of the byte values still possible, asked only when tokens
  lie on both sides (otherwise the vocabulary implies the bit).

Every decision splits the current range into two non-empty ranges, side 1 (the answer "yes")
and side 0; under integer token frequencies ``f`` its probability of "yes" is
``mass(side 1) / (mass(side 1) + mass(side 0))``, a ratio of two prefix sums of ``f`` taken in
the sorted order.

Invariants (``tests/test_bridge.py``):

* *exact*: along a token's walk the chosen sides' probabilities multiply to exactly
  ``f[token] / (sum f - mass of the tokens with an empty spelling)``: coding the walk costs what
  coding the token costs, less the mass of the control tokens no walk reaches;
* *a mirror*: the encoder answers each decision from the token (its rank lies in side 1 or
  not), a decoder from the bits it reads; :meth:`Bridge.walk` is the one function both call,
  so both see the same decisions in the same order and end at the same token;
* the BIT decisions of a walk are bits of the token's bytes, at their positions: any other
  predictor of the next bit of the text (a byte model, another token model walking its own
  vocabulary) can be mixed in exactly there.

Only vocabulary order and integer sums are involved: nothing here depends on floating point.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

#: Decision kinds.
END = 0  # "the token ends here" (side 1: the tokens spelled exactly like the prefix)
BIT = 1  # "the next bit of the byte at ``depth`` is 1"
CHOICE = 2  # "the token is in the upper half of the run of tokens sharing one spelling"


@dataclass(frozen=True)
class Decision:
    """One binary decision of a walk: ``one`` and ``zero`` are ``[lo, hi)`` ranges of sorted
    positions (:attr:`Bridge.order`), both non-empty."""

    kind: int
    depth: int  # bytes of the token already known (BIT: the index of the byte being coded)
    bit: int  # BIT: 0 for the most significant bit .. 7; otherwise 0
    one: tuple[int, int]
    zero: tuple[int, int]

    def says_yes(self, rank: int) -> bool:
        """The answer for the token at sorted position ``rank`` (the encoder's side)."""
        return self.one[0] <= rank < self.one[1]


class Bridge:
    """The trie walk of one vocabulary (``pieces[t]``: token ``t``'s bytes; empty for tokens
    that spell nothing, such as control tokens, which no walk reaches)."""

    def __init__(self, pieces: Sequence[bytes]):
        self.pieces = [bytes(p) for p in pieces]
        #: Token ids sorted by spelling (ties by id).
        self.order = np.array(sorted(range(len(self.pieces)), key=lambda t: (self.pieces[t], t)), dtype=np.int64)
        self._sorted = [self.pieces[t] for t in self.order]
        self.rank = np.empty(len(self.pieces), dtype=np.int64)
        self.rank[self.order] = np.arange(len(self.pieces))
        # The root: every token with a spelling (empty spellings sort first).
        self._root = (bisect.bisect_right(self._sorted, b""), len(self._sorted))
        self._paths: dict[int, tuple[Decision, ...]] = {}

    def spells(self, token: int) -> bool:
        """Whether ``token`` can be walked to (it has a spelling)."""
        return 0 <= token < len(self.pieces) and bool(self.pieces[token])

    def walk(self, answer: Callable[[Decision], bool]) -> int:
        """Walk from the root, asking ``answer`` each decision in turn; returns the token reached."""
        lo, hi = self._root
        if lo >= hi:
            raise ValueError("bridge: no token of this vocabulary has a spelling")
        srt = self._sorted
        depth = 0
        while True:
            if depth:
                exact = lo  # the tokens spelled exactly like the prefix sort first in the range
                while exact < hi and len(srt[exact]) == depth:
                    exact += 1
                if exact > lo:
                    ends = exact == hi or answer(Decision(END, depth, 0, (lo, exact), (exact, hi)))
                    if ends:
                        while exact - lo > 1:
                            mid = (lo + exact) // 2
                            if answer(Decision(CHOICE, depth, 0, (mid, exact), (lo, mid))):
                                lo = mid
                            else:
                                exact = mid
                        return int(self.order[lo])
                    lo = exact
            prefix = srt[lo][:depth]
            v_lo, v_hi = 0, 256
            for bit in range(8):
                m = (v_lo + v_hi) // 2
                mid = bisect.bisect_left(srt, prefix + bytes((m,)), lo, hi)
                if lo < mid < hi:
                    one = answer(Decision(BIT, depth, bit, (mid, hi), (lo, mid)))
                else:
                    one = mid == lo  # every token left has a byte >= m, or none has
                if one:
                    v_lo, lo = m, mid
                else:
                    v_hi, hi = m, mid
            depth += 1

    def path(self, token: int) -> tuple[Decision, ...]:
        """The decisions of ``token``'s walk (the encoder's side; cached)."""
        cached = self._paths.get(token)
        if cached is not None:
            return cached
        if not self.spells(token):
            raise ValueError(f"bridge: token {token} has no spelling and cannot be walked to")
        r = int(self.rank[token])
        steps: list[Decision] = []

        def answer(d: Decision) -> bool:
            steps.append(d)
            return d.says_yes(r)

        reached = self.walk(answer)
        assert reached == token
        self._paths[token] = path = tuple(steps)
        return path

    def span(self, prefix: bytes, lo: int = 0, hi: int | None = None) -> tuple[int, int]:
        """The sorted positions of the tokens whose spelling starts with ``prefix``, as a range
        ``[first, last)`` (searched within ``[lo, hi)``)."""
        hi = len(self._sorted) if hi is None else hi
        first = bisect.bisect_left(self._sorted, prefix, lo, hi)
        if not prefix:
            return first, hi
        after = prefix[:-1] + bytes((prefix[-1] + 1,)) if prefix[-1] < 255 else None
        last = bisect.bisect_left(self._sorted, after, first, hi) if after is not None else self._end_of(prefix, first, hi)
        return first, last

    def _end_of(self, prefix: bytes, lo: int, hi: int) -> int:
        while lo < hi and self._sorted[lo].startswith(prefix):
            lo += 1
        return lo

    def masses(self, freqs: np.ndarray) -> np.ndarray:
        """Prefix sums of ``freqs`` in the sorted order: the mass of sorted positions
        ``[lo, hi)`` is ``m[hi] - m[lo]`` (exact integers)."""
        m = np.zeros(len(self.order) + 1, dtype=np.int64)
        np.cumsum(np.asarray(freqs, dtype=np.int64)[self.order], out=m[1:])
        return m

    @staticmethod
    def counts(masses: np.ndarray, d: Decision) -> tuple[int, int]:
        """(mass of side 1, mass of side 0) of decision ``d``: "yes" has probability
        ``n1 / (n1 + n0)``."""
        return int(masses[d.one[1]] - masses[d.one[0]]), int(masses[d.zero[1]] - masses[d.zero[0]])
