"""Captions of SynthFaces images: several phrasings per image, positives only (CLIP learns what is
there), and one-attribute captions for the small CLIP's label-aware loss."""
from .attributes import COLOR_COLUMNS, STYLE_COLUMNS
# ----------------------------------------------------------------------------------------------------
# Captions: several phrasings per image, positives only (CLIP learns what is there)

HAIR_WORDS = {"black": ("black", "jet-black", "dark"), "blond": ("blond", "blonde", "golden"),
              "brown": ("brown", "chestnut", "brunette"), "gray": ("gray", "grey", "silver"),
              "red": ("red", "ginger", "copper-red"), "purple": ("purple", "violet", "purple-dyed")}
STYLE_PHRASES = {"straight": ("straight {c} hair", "{c} straight hair", "sleek {c} hair"),
                 "wavy": ("wavy {c} hair", "{c} wavy hair"),
                 "curly": ("curly {c} hair", "{c} curly hair", "{c} curls"),
                 "afro": ("a {c} afro", "an afro", "an afro hairstyle"), "mohawk": ("a {c} mohawk", "a mohawk"),
                 "bob": ("a {c} bob cut", "a bob haircut", "{c} bob-cut hair"),
                 "bangs": ("{c} hair with bangs", "bangs", "a fringe of {c} hair"), "bald": ("a bald head",)}
PHRASES = {  # column -> ways to say it after "a person ..."
    "Eyeglasses": ("wearing glasses", "with eyeglasses", "wearing eyeglasses", "with glasses"),
    "Wearing_Hat": ("wearing a hat", "with a hat"), "Wearing_Earrings": ("wearing earrings", "with earrings"),
    "Wearing_Lipstick": ("wearing red lipstick", "with red lips", "with lipstick"),
    "Heavy_Makeup": ("wearing heavy makeup", "with heavy makeup", "with eye shadow and blush"),
    "Big_Lashes": ("with long eyelashes", "with big lashes", "with thick eyelashes"),
    "Freckles": ("with freckles", "with a freckled face"), "Rosy_Cheeks": ("with rosy cheeks", "with red cheeks"),
    "Mustache": ("with a thick moustache", "with a mustache", "with a moustache"),
    "Goatee": ("with a goatee",), "Beard": ("with a beard", "with a full beard", "with a thick beard"),
    "5_o_Clock_Shadow": ("with stubble", "with a five o'clock shadow"), "Sideburns": ("with sideburns",),
    "Bags_Under_Eyes": ("with bags under the eyes", "with tired eyes"),
    "Wearing_Necklace": ("wearing a necklace", "with a gold necklace"),
    "Wearing_Necktie": ("wearing a tie", "wearing a necktie"),
    "Pale_Skin": ("with pale skin", "with very fair skin"),
    "Dark_Skin": ("with dark skin", "with dark brown skin"), "Big_Nose": ("with a big nose",),
    "Pointy_Nose": ("with a pointy nose",), "Big_Lips": ("with big lips", "with full lips"),
    "Narrow_Eyes": ("with narrow eyes",), "Arched_Eyebrows": ("with arched eyebrows",),
    "Bushy_Eyebrows": ("with bushy eyebrows", "with thick eyebrows"),
    "Chubby": ("with a chubby face", "with a round chubby face"),
    "Double_Chin": ("with a double chin",), "High_Cheekbones": ("with high cheekbones",),
    "Oval_Face": ("with an oval face",), "Receding_Hairline": ("with a receding hairline",),
    "Smiling": ("smiling", "with a big smile"), "Surprised": ("looking surprised", "with a surprised face"),
    "Angry": ("looking angry", "frowning", "with an angry face"),
    "Mouth_Slightly_Open": ("with the mouth slightly open", "with parted lips")}
EXPRESSION_ADJ = {"Smiling": "smiling", "Surprised": "surprised", "Angry": "angry"}
# Label captions say these as adjectives half the time too. The dataset captions only ever say "with a bald
# head", and a CLIP trained on them alone did not tie the word "bald" by itself to bald faces (the prompt
# "bald": AUC 0.81, against 0.997 for "a bald head").
LABEL_ADJ = EXPRESSION_ADJ | {"Bald": "bald"}
SALIENT = ("Eyeglasses", "Wearing_Hat", "Wearing_Lipstick", "Heavy_Makeup", "Beard", "Mustache", "Goatee",
           "Freckles", "Rosy_Cheeks", "Big_Lashes", "Wearing_Earrings", "Smiling", "Surprised", "Angry",
           "Mouth_Slightly_Open", "Dark_Skin", "Pale_Skin", "Wearing_Necktie", "Wearing_Necklace")

LEADS = ("a photo of {}", "a portrait of {}", "{}", "a close-up photo of {}", "a picture of {}")
HAIR_COLUMNS = ({col: ("color", k) for k, col in COLOR_COLUMNS.items()}
                | {col: ("style", k) for k, col in STYLE_COLUMNS.items()})


def _subject(lab, rng):
    male = lab["Male"]
    if not lab["Young"]:
        words = ("older man", "old man", "elderly man") if male else ("older woman", "old woman", "elderly woman")
        return str(rng.choice(words))
    return str(rng.choice(("man", "young man", "guy") if male else ("woman", "young woman", "lady")))


def _hair_phrase(lab, rng):
    style = next(k for k, col in STYLE_COLUMNS.items() if lab[col])
    color = next((k for k, col in COLOR_COLUMNS.items() if lab[col]), None)
    phrase = str(rng.choice(STYLE_PHRASES[style])).format(c=rng.choice(HAIR_WORDS[color]) if color else "")
    if lab["Long_Hair"] and "{c} hair" in STYLE_PHRASES[style][0] and rng.random() < 0.5:
        phrase = phrase.replace(" hair", " long hair", 1)
    return "with " + " ".join(phrase.split())


def _article(noun):
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _join(parts):
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def captions(lab, rng, n=5):
    """`n` captions: a long one, medium ones with 2-3 attributes, and short single-attribute ones."""
    present = [c for c in PHRASES if lab.get(c)]
    salient = [c for c in present if c in SALIENT]
    out = []
    for k in range(n):
        n_attr = 5 if k == 0 else 1 if k >= n - 2 else int(rng.integers(2, 4))
        pool = salient if (k >= n - 2 and salient) else present
        chosen = [str(c) for c in rng.permutation(pool)[:n_attr]] if pool else []
        adj = ""
        for c in list(chosen):   # expressions read best as adjectives
            if c in EXPRESSION_ADJ and rng.random() < 0.6:
                adj, chosen = EXPRESSION_ADJ[c] + " ", [x for x in chosen if x != c]
        parts = [str(rng.choice(PHRASES[c])) for c in chosen]
        if k == 0 or (k < n - 2 and rng.random() < 0.6) or not parts:
            parts.insert(0, _hair_phrase(lab, rng))
        generic = k >= n - 2 and rng.random() < 0.5   # "a face with red hair"
        subject = str(rng.choice(("face", "person"))) if generic else _subject(lab, rng)
        first = adj + subject
        noun = _article(first)
        lead = str(rng.choice(LEADS))
        text = noun + " " + _join(parts) if parts else noun
        out.append(lead.format(text))
    return out


def attribute_caption(present, rng):
    """A short caption that states one attribute the image has ("a photo of a face with freckles"), and
    that column. It says nothing else, so it is true of *every* image with that column: the label-aware
    CLIP loss counts all of them as matches, where a dataset caption can only match its own image.
    None when no column in `present` has a phrase."""
    sayable = sorted(c for c in present if c in PHRASES or c in HAIR_COLUMNS)
    if not sayable:
        return None
    col = str(rng.choice(sayable))
    kind, key = HAIR_COLUMNS.get(col, (None, None))
    if kind == "color":
        phrase = f"with {rng.choice(HAIR_WORDS[key])} hair"
    elif kind == "style":
        phrase = "with " + " ".join(str(rng.choice(STYLE_PHRASES[key])).format(c="").split())
    else:
        phrase = str(rng.choice(PHRASES[col]))
    subject = str(rng.choice(("face", "person")))
    if col in LABEL_ADJ and rng.random() < 0.5:
        subject, phrase = f"{LABEL_ADJ[col]} {subject}", ""
    return str(rng.choice(LEADS)).format(f"{_article(subject)} {phrase}".strip()), col


