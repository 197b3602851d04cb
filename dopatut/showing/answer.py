"""The book's answer as a reader wants it: one sentence per foundation, one on the thresholds, one short table.

Every word is chosen by code from the paired intervals of `compare.dopamine_against()` (Dopamine minus each
rival, per seed), so the prose stays true when the numbers move:

    answer = dopamine_against()
    headline(answer)          # two sentences, one per foundation
    thresholds(answer)        # one sentence: what the thresholds add over gain-only
    answer_table(answer)      # HTML: each rival's difference with Dopamine on both foundations
    verdicts_table(answer)    # one row per foundation: whom Dopamine beats, ties with and loses to
"""
from __future__ import annotations

from ..methods.names import display, in_points, listed, signed_points
from ..analysis.stats import PairedDifference, verdict
from ..foundations.tables import Table


def _in_prose(method: str) -> str:
    return f"the {display(method)}" if method == "frozen" else display(method)


def _bounds(diffs: dict[str, PairedDifference]) -> tuple[str, str]:
    """The lowest and the highest end of the intervals, signed, as the reader sees them."""
    return (signed_points(min(d.ci_low for d in diffs.values())),
            signed_points(max(d.ci_high for d in diffs.values())))


def _tie_bounds(diffs: dict[str, PairedDifference]) -> str:
    """Where tied intervals lie, from their actual ends: 'its interval −0.04 to +0.02 points', 'every interval
    between −0.17 and +0.10 points' (not a ± that neither end may reach)."""
    low, high = _bounds(diffs)
    if len(diffs) == 1:
        return f"its interval {low} to {high} points"
    return f"every interval between {low} and {high} points"


def verdicts_table(answer: dict[str, dict[str, PairedDifference]]) -> Table:
    """The answer at a glance: one row per foundation, the rivals Dopamine beats, ties with and loses to, each
    with its gap in points (largest first), the ties with where their intervals lie."""
    header = ["foundation", "Dopamine beats", "ties with", "loses to"]
    body = []
    for kind, diffs in answer.items():
        row = [kind]  # the column says "foundation"
        for words in header[1:]:
            group = {m: d for m, d in diffs.items() if verdict(d) == words.removeprefix("Dopamine ")}
            ranked = sorted(group, key=lambda m: -abs(group[m].mean))
            if not group:
                row.append("none")
            elif words == "ties with":  # 'every interval between': one range for several rivals is no interval
                row.append(", ".join(display(m) for m in ranked)
                           + f" ({_tie_bounds(group).removeprefix('its ').removesuffix(' points')})")
            else:
                row.append(", ".join(f"{display(m)} by {in_points(abs(group[m].mean))}" for m in ranked))
        body.append(row)
    n = next(iter(next(iter(answer.values())).values())).n
    return Table(header, body, caption=f"Dopamine against each rival at 45°, over {n} seeds: gaps in points, "
                                       "verdicts from the paired 95% intervals")


# What each rival can change that gates cannot, for why_rivals_lead: a gate selects and rescales the hidden neurons
# the foundation has; head-only retrains the layer that reads them; LoRA and full fine-tuning change the weights
# that compute them.
_READOUT = ("head",)
_FEATURES = ("lora", "full")


def why_rivals_lead(kind: str, diffs: dict[str, PairedDifference], where: str = "") -> str:
    """Whom Dopamine loses to on one foundation, and why, from what each winner trains (at most two sentences):
    'On the upright foundation, head-only, LoRA (r = 4) and full fine-tuning pull ahead of Dopamine. Head-only
    changes no hidden neuron: it retrains only the output layer, a new readout of the features the foundation
    already has, and that alone beats gates, which can only select and rescale them; LoRA (r = 4) and full
    fine-tuning, which can also change the features themselves, lead by more (chapter 7).' `where`: a pointer
    in brackets."""
    ahead = {m: d for m, d in diffs.items() if verdict(d) == "loses to"}
    name = display(kind, "foundation")
    if not ahead:
        return f"On the {name}, no rival pulls ahead of Dopamine" + (f" ({where})." if where else ".")
    ranked = sorted(ahead, key=lambda m: abs(ahead[m].mean))  # smallest gap first
    first = (f"On the {name}, {listed([_in_prose(m) for m in ranked])} pull{'s' * (len(ranked) == 1)} ahead of "
             "Dopamine.")
    readout = [m for m in ranked if m in _READOUT]
    features = [m for m in ranked if m in _FEATURES]
    parts = []
    if readout:
        parts.append(f"{display(readout[0])} changes no hidden neuron: it retrains only the output layer, a new "
                     "readout of the features the foundation already has, and that alone beats gates, which "
                     "can only select and rescale them")
    if features:
        names = listed([display(m) for m in features])
        if readout:
            more = min(abs(ahead[m].mean) for m in features) > abs(ahead[readout[0]].mean)
            parts.append(f"{names}, which can also change the features themselves, "
                         + ("lead by more" if more else "pull ahead too"))
        else:
            parts.append(f"{names} can change the hidden features themselves, while gates can only select and "
                         "rescale the neurons the foundation has")
    if not parts:
        return first[:-1] + (f" ({where})." if where else ".")
    second = "; ".join(parts)
    return f"{first} {second[0].upper()}{second[1:]}" + (f" ({where})." if where else ".")


def _group(words: str, diffs: dict[str, PairedDifference]) -> str:
    names = listed([_in_prose(m) for m in diffs])
    if words == "ties with":
        return f"ties with {names} ({_tie_bounds(diffs)})"
    # each rival with its own gap, smallest first: 'beats threshold-only by 0.24 and the frozen foundation by
    # 0.89 points' (a range over several rivals would leave the reader to match numbers to names)
    gaps = sorted(diffs.items(), key=lambda item: abs(item[1].mean))
    return f"{words} " + listed([f"{_in_prose(m)} by {in_points(abs(d.mean))}" for m, d in gaps]) + " points"


def foundation_sentence(kind: str, diffs: dict[str, PairedDifference]) -> str:
    """'On the mixture foundation, Dopamine beats ..., ties with ... and loses to ...' (d = Dopamine - rival)."""
    if not diffs:
        raise ValueError(f"foundation_sentence: no rivals for the {kind} foundation")
    groups = [_group(words, {m: d for m, d in diffs.items() if verdict(d) == words})
              for words in ("beats", "ties with", "loses to") if any(verdict(d) == words for d in diffs.values())]
    return f"On the {display(kind, 'foundation')}, Dopamine {listed(groups)}."


def in_short(kind: str, diffs: dict[str, PairedDifference]) -> str:
    """The verdicts alone, for a recap: 'mixture foundation: Dopamine beats A; ties with B and C; loses to D'."""
    groups = [f"{words} " + listed([_in_prose(m) for m, d in diffs.items() if verdict(d) == words])
              for words in ("beats", "ties with", "loses to") if any(verdict(d) == words for d in diffs.values())]
    return f"{display(kind, 'foundation')}: Dopamine " + "; ".join(groups)


def headline(answer: dict[str, dict[str, PairedDifference]]) -> str:
    """One sentence per foundation: the whole comparison in words (at most two sentences for two foundations)."""
    return " ".join(foundation_sentence(kind, diffs) for kind, diffs in answer.items())


def thresholds(answer: dict[str, dict[str, PairedDifference]], against: str = "gain_only") -> str:
    """One sentence: what Dopamine's thresholds add on top of gains alone (Dopamine against gain-only)."""
    d = {kind: diffs[against] for kind, diffs in answer.items()}
    ties = [kind for kind, x in d.items() if verdict(x) == "ties with"]
    parts = []
    if ties:
        top = max(d[k].ci_high for k in ties)
        where = "either foundation" if len(ties) == len(d) == 2 else listed([f"the {display(k, 'foundation')}" for k in ties])
        parts.append(f"nothing we can detect on {where} (at most {signed_points(top)} points, the top of the "
                     f"{'intervals' if len(ties) > 1 else 'interval'})")
    for kind, x in d.items():
        if kind not in ties:
            word = "gain" if x.mean > 0 else "loss"
            parts.append(f"a {word} of {in_points(abs(x.mean))} points on the {display(kind, 'foundation')} "
                         f"(95% interval {signed_points(x.ci_low)} to {signed_points(x.ci_high)})")
    return f"Over {display(against)}, the thresholds add {listed(parts)}."


def versus(answer: dict[str, dict[str, PairedDifference]], rival: str) -> str:
    """One sentence: Dopamine against one rival on every foundation, e.g. 'Over 10 seeds, Dopamine beats the
    frozen foundation on the mixture foundation by 0.89 points and on the upright foundation by 43.58 points.'"""
    parts = []
    for kind, diffs in answer.items():
        d = diffs[rival]
        words = verdict(d)
        size = (f"({_tie_bounds({rival: d})})" if words == "ties with"
                else f"by {in_points(abs(d.mean))} points")
        parts.append((words, f"on the {display(kind, 'foundation')} {size}"))
    n = next(iter(answer.values()))[rival].n
    if len({w for w, _ in parts}) == 1:
        return f"Over {n} seeds, Dopamine {parts[0][0]} {_in_prose(rival)} {listed([p for _, p in parts])}."
    return f"Over {n} seeds, Dopamine " + listed([f"{w} {_in_prose(rival)} {p}" for w, p in parts]) + "."


def answer_table(answer: dict[str, dict[str, PairedDifference]], sizes: dict[str, int] | None = None) -> Table:
    """Rows: rivals; per foundation, Dopamine minus the rival at 45° in points with its 95% interval, and the verdict."""
    kinds = list(answer)
    rivals = list(answer[kinds[0]])
    header = ["Dopamine against", *(["trainable parameters"] if sizes else []),
              *(f"{display(k, 'foundation')}: Dopamine − it, points (95% interval)" for k in kinds)]
    body = []
    for m in rivals:
        cells = [f"{signed_points(answer[k][m].mean)} ({signed_points(answer[k][m].ci_low)} to {signed_points(answer[k][m].ci_high)}): "
                 f"{verdict(answer[k][m])}" for k in kinds]
        body.append([display(m), *([f"{sizes[m]:,}"] if sizes else []), *cells])
    return Table(header, body)
