"""Free-text prompts: which judged attribute a prompt asks for, if any.

Any text is a prompt. When it names one SynthFaces attribute ("red hair", "a person with red hair", "ginger",
"wearing glasses", "a smiling face"), the scorecard judges the edit by that attribute; any other text
("a vampire", "red hair and glasses") is edited all the same and scored without an attribute (CLIP
similarity, identity, realism, LPIPS), and the tables say so.
"""
import re
from functools import lru_cache

from .attributes import COLOR_COLUMNS, PROMPT_ATTRIBUTES, STYLE_COLUMNS
from .captions import HAIR_WORDS, LABEL_ADJ, PHRASES

# words that frame a prompt without saying what to change
LEADS = ("a photo of", "a portrait of", "a picture of", "a close-up photo of", "an image of", "a face of")
SUBJECTS = ("a person", "a face", "a man", "a woman", "someone", "somebody", "a guy", "a girl", "a boy", "a lady",
            "the person", "the face", "person", "face", "portrait")
FILLERS = ("who is", "that is", "who has", "that has", "with", "wearing", "looking", "having", "has", "is")
ARTICLES = ("a", "an", "the", "some")


def normalize(text):
    """Lower case, punctuation to spaces, the framing words dropped: "A photo of a person with Red hair!" ->
    "red hair"."""
    t = " " + re.sub(r"[^a-z0-9'\- ]", " ", text.lower()) + " "
    for words in (LEADS, SUBJECTS, FILLERS, ARTICLES):
        for w in sorted(words, key=len, reverse=True):
            t = t.replace(f" {w} ", " ")
    return " ".join(t.split())


@lru_cache(maxsize=1)
def phrase_index():
    """normalized phrase -> column, from the prompts, the captions' phrasings and the hair words."""
    index = {}

    def add(phrase, column):
        index.setdefault(normalize(phrase), column)

    for prompt, column in PROMPT_ATTRIBUTES.items():
        add(prompt, column)
    for column, phrases in PHRASES.items():
        for p in phrases:
            add(p, column)
    for column, adj in LABEL_ADJ.items():
        add(adj, column)
    for colour, column in COLOR_COLUMNS.items():
        for word in HAIR_WORDS[colour]:
            add(f"{word} hair", column)
            add(f"{word}-haired", column)
        add(f"{colour} hair", column)
    add("ginger", COLOR_COLUMNS["red"])
    add("redhead", COLOR_COLUMNS["red"])
    add("blonde", COLOR_COLUMNS["blond"])
    for style, column in STYLE_COLUMNS.items():
        add(f"{style} hair" if style in ("straight", "wavy", "curly") else style, column)
    add("bob cut", STYLE_COLUMNS["bob"])
    add("bob haircut", STYLE_COLUMNS["bob"])
    add("curls", STYLE_COLUMNS["curly"])
    add("bald head", STYLE_COLUMNS["bald"])
    add("glasses", "Eyeglasses")
    add("moustache", "Mustache")
    add("mustache", "Mustache")
    add("lipstick", "Wearing_Lipstick")
    add("smile", "Smiling")
    return index


def check_prompt(text):
    """A prompt as given, or a ValueError for what cannot be one."""
    if not isinstance(text, str):
        raise ValueError(f"a prompt is a string, got {type(text).__name__} {text!r}")
    if not text.strip():
        raise ValueError("a prompt is empty: give the text the face should match, e.g. 'red hair'")
    return text.strip()


def target_column(text):
    """The attribute column a prompt asks for, or None when it names none (or several)."""
    return phrase_index().get(normalize(check_prompt(text)))


def check_prompts(prompts):
    """A list of prompts -> the same list; a plain string, an empty list or an empty prompt is an error."""
    if isinstance(prompts, str):
        raise ValueError(f"prompts must be a list of prompts, e.g. [{prompts!r}], got the string {prompts!r}")
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError(f"prompts must be a non-empty list of strings, got {prompts!r}")
    return [check_prompt(p) for p in prompts]
