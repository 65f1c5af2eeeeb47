"""The SynthFaces attribute schema: the label columns (CelebA's 40 + 13 extra), the prompts this project
edits with and the column that judges each, and the map between a face's parameters (`Identity`, `Look`
of `render.py`) and its columns. The renderer draws; this module says what a drawing is labelled."""
from dataclasses import replace

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
    "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young")
EXTRA_ATTRIBUTES = (
    "Red_Hair", "Purple_Hair", "Curly_Hair", "Afro", "Mohawk", "Bob_Cut", "Long_Hair", "Surprised",
    "Angry", "Freckles", "Big_Lashes", "Dark_Skin", "Beard")
ALL_ATTRIBUTES = CELEBA_ATTRIBUTES + EXTRA_ATTRIBUTES
CONSTANT_COLUMNS = ("Attractive", "Blurry")

# The prompts this project edits with, and the column that says whether an edit worked. The first eight
# are notebook 03's comparison; the rest are the mapper / global-direction prompts of the paper.
PROMPT_ATTRIBUTES = {
    "dark skin": "Dark_Skin", "freckles": "Freckles", "red lipstick": "Wearing_Lipstick",
    "heavy makeup": "Heavy_Makeup", "thick moustache": "Mustache", "red hair": "Red_Hair",
    "big lashes": "Big_Lashes", "curly hair": "Curly_Hair", "bald": "Bald", "smiling": "Smiling",
    "eyeglasses": "Eyeglasses", "blond hair": "Blond_Hair", "gray hair": "Gray_Hair", "mohawk": "Mohawk",
    "afro": "Afro", "bob-cut": "Bob_Cut", "surprised": "Surprised", "purple hair": "Purple_Hair",
}

HAIR_STYLES = ("straight", "wavy", "curly", "afro", "mohawk", "bob", "bangs", "bald")
EXPRESSIONS = ("neutral", "smile", "surprised", "angry", "open")
LONG_STYLES = ("straight", "wavy", "curly", "bangs")          # styles that come short or long
RECEDING_STYLES = ("straight", "wavy", "curly")               # a receding hairline needs a hairline

# Label columns <-> fields. Groups are one-of (None = no column is set); flags are plain booleans.
COLOR_COLUMNS = {"black": "Black_Hair", "blond": "Blond_Hair", "brown": "Brown_Hair",
                 "gray": "Gray_Hair", "red": "Red_Hair", "purple": "Purple_Hair"}
STYLE_COLUMNS = {"straight": "Straight_Hair", "wavy": "Wavy_Hair", "curly": "Curly_Hair",
                 "afro": "Afro", "mohawk": "Mohawk", "bob": "Bob_Cut", "bangs": "Bangs", "bald": "Bald"}
EXPRESSION_COLUMNS = {"smile": "Smiling", "surprised": "Surprised", "angry": "Angry",
                      "open": "Mouth_Slightly_Open"}
IDENTITY_FLAGS = {"Male": "male", "Young": "young", "Big_Nose": "big_nose", "Pointy_Nose": "pointy_nose",
                  "Big_Lips": "big_lips", "Narrow_Eyes": "narrow_eyes", "Arched_Eyebrows": "arched_brows",
                  "Bushy_Eyebrows": "bushy_brows", "Chubby": "chubby", "Double_Chin": "double_chin",
                  "High_Cheekbones": "high_cheekbones", "Oval_Face": "oval_face"}
LOOK_FLAGS = {"Eyeglasses": "eyeglasses", "Wearing_Hat": "hat", "Wearing_Earrings": "earrings",
              "Wearing_Lipstick": "lipstick", "Heavy_Makeup": "makeup", "Big_Lashes": "lashes",
              "Freckles": "freckles", "Rosy_Cheeks": "rosy", "Mustache": "mustache", "Goatee": "goatee",
              "Beard": "beard", "5_o_Clock_Shadow": "stubble", "Sideburns": "sideburns",
              "Bags_Under_Eyes": "bags", "Wearing_Necklace": "necklace", "Wearing_Necktie": "necktie"}
PALE_MAX, DARK_MIN = 0.12, 0.7   # Identity.skin thresholds of Pale_Skin / Dark_Skin


# The neutral text of every zero-shot decision ("a photo of a face with <prompt>" vs this) and of the
# small CLIP's neutral-anchored loss.
NEUTRAL_TEXT = "a photo of a face"

# Labels

def labels(idn, look):
    """name -> bool for every column of ALL_ATTRIBUTES."""
    hair = look.hair_style != "bald"
    out = {name: False for name in ALL_ATTRIBUTES}
    out.update({col: bool(getattr(idn, field)) for col, field in IDENTITY_FLAGS.items()})
    out.update({col: bool(getattr(look, field)) for col, field in LOOK_FLAGS.items()})
    if hair:   # a bald head shows no hair colour worth naming
        out[COLOR_COLUMNS[look.hair_color]] = True
    out[STYLE_COLUMNS[look.hair_style]] = True
    if look.expression in EXPRESSION_COLUMNS:
        out[EXPRESSION_COLUMNS[look.expression]] = True
    out["Long_Hair"] = look.long_hair and look.hair_style in LONG_STYLES
    out["Receding_Hairline"] = look.receding and look.hair_style in RECEDING_STYLES
    out["No_Beard"] = not (look.beard or look.goatee or look.mustache)
    out["Pale_Skin"], out["Dark_Skin"] = idn.skin < PALE_MAX, idn.skin > DARK_MIN
    return out


def set_attribute(idn, look, name, value=True):
    """Return (identity, look) with column `name` set to `value` and everything else unchanged.
    Switching a one-of column off falls back to a default member (brown hair, straight, neutral)."""
    value = bool(value)
    if name in IDENTITY_FLAGS:
        return replace(idn, **{IDENTITY_FLAGS[name]: value}), look
    if name in LOOK_FLAGS:
        return idn, replace(look, **{LOOK_FLAGS[name]: value})
    for columns, field, default, other in ((COLOR_COLUMNS, "hair_color", "brown", "black"),
                                           (STYLE_COLUMNS, "hair_style", "straight", "wavy"),
                                           (EXPRESSION_COLUMNS, "expression", "neutral", "neutral")):
        key = {col: k for k, col in columns.items()}.get(name)
        if key is not None:
            current = getattr(look, field)
            new = key if value else current if current != key else default if key != default else other
            return idn, replace(look, **{field: new})
    if name == "Long_Hair":
        style = look.hair_style if look.hair_style in LONG_STYLES or not value else "straight"
        return idn, replace(look, long_hair=value, hair_style=style)
    if name == "Receding_Hairline":
        style = look.hair_style if look.hair_style in RECEDING_STYLES or not value else "straight"
        return idn, replace(look, receding=value, hair_style=style)
    if name == "No_Beard":
        return idn, replace(look, beard=not value, goatee=False, mustache=False)
    if name in ("Pale_Skin", "Dark_Skin"):
        return replace(idn, skin=(0.04 if name == "Pale_Skin" else 0.88) if value else 0.3), look
    raise KeyError(f"{name!r} cannot be set (constant columns: {CONSTANT_COLUMNS})")




# ----------------------------------------------------------------------------------------------------
# Identity traits: what makes a SynthFaces person that person, whatever the look (the identity judge's
# targets). Categorical traits, then the face shape (continuous, each scaled to [0, 1] over its sampled range).

IDENTITY_TRAITS = {
    "sex": ("female", "male"),
    "age": ("old", "young"),
    "skin": ("pale", "light", "medium", "dark"),       # the renderer's skin buckets (with gaps between them)
    "hair": ("black", "brown", "blond", "red", "gray"),  # natural colour: brows and beard keep it when dyed
    "eyes": ("brown", "dark brown", "blue", "green", "hazel", "gray"),
}
SKIN_EDGES = (0.13, 0.40, 0.68)     # between the renderer's skin buckets
FACE_SHAPE = {"face_w": (0.222, 0.248), "face_h": (0.288, 0.312), "jaw": (1.95, 2.25), "chin": (0.16, 0.28)}

# Identity traits an edit towards a column may change and still be the same person: dyeing or shaving the
# hair changes what the natural colour is read from; the data ties grey hair to age and a moustache to men.
TRAITS_AN_EDIT_MAY_CHANGE = {
    "Dark_Skin": {"skin"}, "Pale_Skin": {"skin"}, "Red_Hair": {"hair"}, "Blond_Hair": {"hair"},
    "Purple_Hair": {"hair"}, "Black_Hair": {"hair"}, "Brown_Hair": {"hair"}, "Bald": {"hair"},
    "Gray_Hair": {"hair", "age"}, "Mustache": {"sex"}, "Beard": {"sex"}, "Goatee": {"sex"},
}


def identity_traits(idn):
    """An Identity -> (class index per categorical trait, in IDENTITY_TRAITS' order; face shape in [0, 1]^4)."""
    skin = sum(idn.skin > e for e in SKIN_EDGES)
    classes = [int(idn.male), int(idn.young), skin, IDENTITY_TRAITS["hair"].index(idn.hair_color), idn.eye_color]
    shape = [(getattr(idn, k) - lo) / (hi - lo) for k, (lo, hi) in FACE_SHAPE.items()]
    return classes, shape
