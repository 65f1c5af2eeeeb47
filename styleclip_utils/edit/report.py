"""The scorecard as text: the tables and conclusions the editing notebooks print, for judged cards (SynthFaces:
good-edit rate first) and open ones (FFHQ: CLIP score, ID similarity, LPIPS, time)."""
from .scorecard import summarize


def pct(v):
    return "–" if v is None else f"{100 * v:.0f}%"


def num(v, fmt=".3f"):
    return "–" if v is None else format(v, fmt)


def is_judged(card):
    return "clip_score" not in card


def prompt_table(cards, spaces, prompts, n, unseen=()):
    """Markdown table, one row per prompt, one column per space: the good-edit rate (judged) or the CLIP score
    (open). Prompts in `unseen` get a * (ones the recipe search never saw)."""
    judged = is_judged(cards[spaces[0]])
    lines = ["| prompt | " + " | ".join(spaces) + " |", "|---|" + "---|" * len(spaces)]
    for k, p in enumerate(prompts):
        sel = slice(k * n, (k + 1) * n)
        cells = [pct(summarize(cards[s], sel)["good"]) if judged else num(summarize(cards[s], sel)["clip_score"])
                 for s in spaces]
        lines.append(f"| {p}{' *' if p in unseen else ''} | " + " | ".join(cells) + " |")
    if unseen:
        lines.append("(* a prompt the recipe search never saw; every face here is one the search never saw)")
    if not judged:
        lines.append("(CLIP score: cosine of the edited image with the prompt, by the editing CLIP itself)")
    return "\n".join(lines)


def space_table(cards, spaces, held_out=None, label="space"):
    """One row per space (or per whatever `cards` is keyed by; `label` heads that column): good (all / on
    held-out items), success, same person, realistic, kept (judged); or CLIP score, its gain, ID similarity,
    LPIPS, seconds per edit (open)."""
    summary = {s: summarize(cards[s]) for s in spaces}
    w = max(7, *(len(s) for s in spaces))
    if not is_judged(cards[spaces[0]]):
        lines = [f"{label:{w}s} {'CLIP':>6s} {'gain':>7s} {'ID sim':>6s} {'LPIPS':>6s} {'s/edit':>7s}"]
        for s in spaces:
            m = summary[s]
            lines.append(f"{s:{w}s} {num(m['clip_score']):>6s} {num(m['clip_gain'], '+.3f'):>7s} "
                         f"{num(m['id_similarity']):>6s} {num(m['distance']):>6s} {num(m['seconds'], '.2f'):>7s}")
        return "\n".join(lines)
    lines = [f"{label:{w}s} {'good':>5s} {'unseen':>6s} {'success':>7s} {'same':>5s} {'real':>5s} {'kept':>5s}"]
    for s in spaces:
        m = summary[s]
        h = summarize(cards[s], held_out) if held_out is not None and held_out.any() else {"good": None}
        lines.append(f"{s:{w}s} {pct(m['good']):>5s} {pct(h['good']):>6s} {pct(m['success']):>7s} "
                     f"{pct(m['identity_kept']):>5s} {pct(m['realistic']):>5s} {pct(m['preserved']):>5s}")
    return "\n".join(lines)


def conclusions(cards, spaces):
    """What the measurements say, in a few sentences."""
    summary = {s: summarize(cards[s]) for s in spaces}
    if not is_judged(cards[spaces[0]]):
        best = max(spaces, key=lambda s: summary[s]["clip_score"])
        m = summary[best]
        return (f"Highest CLIP score: {best} ({num(m['clip_score'])}, gain {num(m['clip_gain'], '+.3f')}, ID similarity "
                f"{num(m['id_similarity'])}). No judge scored these edits: CLIP and ArcFace are the edit's own losses.")
    best = max(spaces, key=lambda s: summary[s]["good"])
    m = summary[best]
    lines = [f"Best space by good-edit rate: {best} ({pct(m['good'])}; success {pct(m['success'])}, "
             f"same person {pct(m['identity_kept'])}, realistic {pct(m['realistic'])})."]
    if "w+" in summary and "z" in summary:
        lines.append(f"w+ vs z: good {pct(summary['w+']['good'])} vs {pct(summary['z']['good'])}; success "
                     f"{pct(summary['w+']['success'])} vs {pct(summary['z']['success'])}.")
    limits = {k: 1 - m[k] for k in ("success", "identity_kept", "realistic", "preserved")}
    lines.append("What most often stops a good edit in " + best + ": " + max(limits, key=limits.get).replace("_", " ") +
                 f" (fails on {pct(max(limits.values()))} of edits).")
    return "\n".join(lines)


def free_line(prompt, m, column=None):
    """One line for a free-text prompt's summary `m` (`column`: the attribute it was read as, if any)."""
    if "clip_score" in m:
        return (f"{prompt!r}: CLIP score {num(m['clip_score'])} (gain {num(m['clip_gain'], '+.3f')}), ID similarity "
                f"{num(m['id_similarity'])}, LPIPS {num(m['distance'])}")
    what = f"judged as {column}" if m["judged"] else "no attribute judge"
    return (f"{prompt!r} ({what}): good {pct(m['good'])}, CLIP gain {m['clip_gain']:+.3f}, same person "
            f"{pct(m['identity_kept'])}, realistic {pct(m['realistic'])}")


def edit_label(card, k, space):
    """A figure label for edit k: good/no (judged) or its CLIP score (open)."""
    if is_judged(card):
        return f"{space}: {'good' if card['good'][k] == 1 else 'no'}"
    return f"{space}: CLIP {float(card['clip_score'][k]):.2f}"


def inversion_table(table, timing=True):
    """Markdown table of metrics.inversion.inversion_quality results, one row per inverter (timing=False: without
    the ms/image column, for a cell whose output is compared across machines)."""
    head = "| inverter | MSE | perceptual | same person | attributes kept |" + (" ms/image |" if timing else "")
    lines = [head, "|---|---|---|---|---|" + ("---|" if timing else "")]
    for name, q in table.items():
        lines.append(f"| {name} | {q['mse']:.4f} | {q['perceptual']:.3f} | {pct(q['identity_kept'])} | "
                     f"{100 * q['attributes_kept']:.1f}% |" + (f" {1000 * q['seconds_per_image']:.1f} |" if timing else ""))
    return "\n".join(lines)


def pick_alpha_beta(rows, min_id_similarity=0.5):
    """The (alpha, beta) of the best grid row: the highest good-edit rate (ties: success, then same person)
    where judges exist; else the highest CLIP score among rows whose ID similarity is at least
    `min_id_similarity` (all rows if none is)."""
    if rows[0]["good"] is not None:
        best = max(rows, key=lambda r: (r["good"], r["success"] or 0, r["identity_kept"] or 0))
    else:
        ok = [r for r in rows if (r.get("id_similarity") or 0) >= min_id_similarity] or rows
        best = max(ok, key=lambda r: r["clip_score"])
    return best["alpha"], best["beta"]


def alpha_beta_table(rows):
    """One line per (beta, alpha) of the grid: channels moved, then good/success/same/real/kept (judged) or
    CLIP score, gain and ID similarity (open)."""
    judged = rows[0]["good"] is not None
    head = f"{'beta':>5s} {'alpha':>5s} {'chans':>6s} " + (f"{'good':>5s} {'success':>7s} {'same':>5s} {'real':>5s} {'kept':>5s}"
                                                          if judged else f"{'CLIP':>6s} {'gain':>7s} {'ID sim':>6s}")
    lines = [head]
    for r in rows:
        lead = f"{r['beta']:5.2f} {r['alpha']:5.1f} {r['channels']:6.0f} "
        lines.append(lead + (f"{pct(r['good']):>5s} {pct(r['success']):>7s} {pct(r['identity_kept']):>5s} "
                             f"{pct(r['realistic']):>5s} {pct(r['preserved']):>5s}" if judged else
                             f"{num(r['clip_score']):>6s} {num(r['clip_gain'], '+.3f'):>7s} {num(r['id_similarity']):>6s}"))
    return "\n".join(lines)
