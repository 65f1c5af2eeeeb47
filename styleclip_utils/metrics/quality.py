"""The measurements behind the SynthFaces models' quality bars and, later, behind every edit: attribute
accuracy, CLIP zero-shot accuracy, identity verification with a calibrated threshold, and attribute
frequencies of generated faces."""
import torch
import torch.nn.functional as F

from ..data.attributes import NEUTRAL_TEXT, PROMPT_ATTRIBUTES
from ..losses.clip_loss import to_clip_input


def _batches(images, batch):
    for i in range(0, len(images), batch):
        yield images[i:i + batch].float() / 127.5 - 1  # uint8 -> [-1, 1]


@torch.no_grad()
def predict_attributes(classifier, images, batch=256, device="cpu"):
    """uint8 images [N, 3, S, S] -> bool [N, A]."""
    return torch.cat([classifier.predict(x.to(device)).cpu() for x in _batches(images, batch)])


def classifier_accuracy(classifier, images, attrs, batch=256, device="cpu", min_frequency=0.05):
    """Per-attribute accuracy, and the mean over attributes present in >= min_frequency of the images
    (a constant column is trivially 'accurate' and would flatter the mean)."""
    pred = predict_attributes(classifier, images, batch, device)
    acc = (pred == attrs.bool()).float().mean(0)
    freq = attrs.float().mean(0)
    frequent = (freq >= min_frequency) & (freq <= 1 - min_frequency)
    per = {n: round(float(a), 4) for n, a in zip(classifier.attribute_names, acc)}
    return per, float(acc[frequent].mean())


@torch.no_grad()
def clip_text_features(model, texts, context_length, device="cpu"):
    import clip
    tokens = clip.tokenize(texts, context_length=context_length, truncate=True).to(device)
    return F.normalize(model.encode_text(tokens).float(), dim=1)


@torch.no_grad()
def clip_image_features(model, images, batch=256, device="cpu"):
    res = model.visual.input_resolution
    return torch.cat([F.normalize(model.encode_image(to_clip_input(x.to(device), res)).float(), dim=1).cpu()
                      for x in _batches(images, batch)])


@torch.no_grad()
def clip_says(model, images, prompts=PROMPT_ATTRIBUTES, device="cpu"):
    """uint8 images [N, 3, S, S] -> {prompt: bool [N]}: is the image closer to "a photo of a face with
    <prompt>" than to the neutral "a photo of a face"? The zero-shot decision a CLIP-guided edit relies on."""
    ctx = model.context_length
    img_f = clip_image_features(model, images, device=device)
    texts = [NEUTRAL_TEXT] + [f"{NEUTRAL_TEXT} with {prompt}" for prompt in prompts]
    neutral, *targets = [clip_text_features(model, [t], ctx, device).cpu()[0] for t in texts]  # one at a time,
    # as the rates in the shipped records were measured (a batch of texts rounds differently)
    return {prompt: img_f @ t > img_f @ neutral for prompt, t in zip(prompts, targets)}


def clip_zero_shot(model, images, attrs, attribute_names, prompts=PROMPT_ATTRIBUTES, device="cpu"):
    """For each prompt, does CLIP find images with the attribute closer to "a photo of a face with <prompt>"
    than to the neutral "a photo of a face", and images without it not? Balanced accuracy (mean of the
    rates on positives and negatives) per prompt: the decision a CLIP-guided edit relies on."""
    prompts = {p: c for p, c in prompts.items() if c in attribute_names}
    out = {}
    for prompt, says in clip_says(model, images, prompts, device).items():
        truth = attrs[:, attribute_names.index(prompts[prompt])].bool()
        if truth.all() or not truth.any():
            continue
        out[prompt] = round(float((says[truth].float().mean() + (~says[~truth]).float().mean()) / 2), 4)
    return out


@torch.no_grad()
def embed(id_net, images, batch=256, device="cpu"):
    return torch.cat([id_net(x.to(device)).cpu() for x in _batches(images, batch)])


def verification_pairs(identities, n_pairs, seed=0):
    """n_pairs same-identity and n_pairs different-identity index pairs, deterministic from seed."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.as_tensor(identities)
    by_id = {int(i): torch.nonzero(ids == i).flatten() for i in torch.unique(ids)}
    multi = [i for i, rows in by_id.items() if len(rows) > 1]
    if not multi or len(by_id) < 2:
        raise ValueError(f"verification needs at least two identities, one of them with two images; got "
                         f"{len(by_id)} identities ({len(multi)} with several images): use more images")
    same, diff = [], []
    while len(same) < n_pairs:
        rows = by_id[multi[int(torch.randint(len(multi), (1,), generator=g))]]
        a, b = rows[torch.randperm(len(rows), generator=g)[:2]]
        same.append((int(a), int(b)))
    while len(diff) < n_pairs:
        a, b = torch.randint(len(ids), (2,), generator=g)
        if ids[a] != ids[b]:
            diff.append((int(a), int(b)))
    return torch.tensor(same), torch.tensor(diff)


def best_threshold(sim_same, sim_diff):
    """The cosine threshold with the best accuracy on these pairs (candidates: every observed value)."""
    cands = torch.cat([sim_same, sim_diff]).sort().values
    acc = torch.stack([((sim_same >= t).float().sum() + (sim_diff < t).float().sum()) for t in cands])
    return float(cands[int(acc.argmax())])


def identity_verification(id_net, calib_images, calib_ids, test_images, test_ids, n_pairs=1000, seed=0,
                          device="cpu"):
    """Calibrate the same-person cosine threshold on one set of identities (e.g. train), report
    verification accuracy on pairs of *other* identities (the test split's). -> (accuracy, threshold)."""
    def sims(images, ids, s):
        emb = embed(id_net, images, device=device)
        same, diff = verification_pairs(ids, n_pairs, s)
        return (emb[same[:, 0]] * emb[same[:, 1]]).sum(1), (emb[diff[:, 0]] * emb[diff[:, 1]]).sum(1)

    threshold = best_threshold(*sims(calib_images, calib_ids, seed))
    s_same, s_diff = sims(test_images, test_ids, seed + 1)
    acc = ((s_same >= threshold).float().sum() + (s_diff < threshold).float().sum()) / (2 * n_pairs)
    return float(acc), threshold


def to_uint8(img):
    """[-1, 1] float images -> uint8 on CPU, as a saved image would be."""
    return ((img.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def generated_faces(G, n, batch=100, truncation_psi=1.0, seed=0, device="cpu"):
    """n generated faces from seeded z (on CPU, so the same on every device), in batches: yields images."""
    g = torch.Generator().manual_seed(seed)
    for start in range(0, n, batch):
        z = torch.randn(min(batch, n - start), G.style_dim, generator=g).to(device)
        yield G.synthesis(G.broadcast(G.mapping(z, truncation_psi)), noise_mode="const")


@torch.no_grad()
def generated_attribute_frequencies(G, classifier, n=2000, batch=100, truncation_psi=1.0, seed=0, device="cpu"):
    """Share of n generated faces (random noise, seeded) on which the classifier sees each attribute."""
    counts = torch.zeros(len(classifier.attribute_names))
    for img in generated_faces(G, n, batch, truncation_psi, seed, device):
        counts += classifier.predict(img).float().sum(0).cpu()
    return {name: round(float(c) / n, 4) for name, c in zip(classifier.attribute_names, counts)}


@torch.no_grad()
def generated_clip_rates(G, clip_model, n=2000, batch=100, seed=0, device="cpu", prompts=PROMPT_ATTRIBUTES):
    """Share of the same n generated faces as `generated_attribute_frequencies` (same seed) that the CLIP calls
    "<prompt>" (`clip_says`), as 8-bit images the way a saved sample is. Next to the classifier's count this
    shows whether the CLIP, which the GAN's vision-aided losses read, sees a frequency gap the judge sees."""
    images = torch.cat([to_uint8(img) for img in generated_faces(G, n, batch, seed=seed, device=device)])
    return {prompt: round(float(says.float().mean()), 4)
            for prompt, says in clip_says(clip_model, images, prompts, device).items()}


@torch.no_grad()
def most_likely_generated(G, classifier, attributes, n=500, k=4, batch=100, seed=0, device="cpu"):
    """For each attribute, the k of n generated faces (seeded, ψ = 1) the classifier scores highest ->
    (images [len(attributes)·k, 3, H, W], their probabilities). What G draws when it draws an attribute:
    the frequency check counts these faces, this lets one look at them."""
    cols = [classifier.index(a) for a in attributes]
    best_p = torch.full((len(cols), k), -1.0)
    best_img = None
    for img in generated_faces(G, n, batch, seed=seed, device=device):
        img = img.clamp(-1, 1).cpu()
        p = torch.sigmoid(classifier(img.to(device))).cpu()[:, cols].T            # [attributes, batch]
        if best_img is None:
            best_img = img.new_zeros(len(cols), k, *img.shape[1:])
        p_all, top = torch.cat([best_p, p], 1).topk(k, dim=1)                     # keep the k best so far
        pool = torch.cat([best_img, img[None].expand(len(cols), *img.shape)], 1)
        best_img = pool[torch.arange(len(cols))[:, None], top]
        best_p = p_all
    return best_img.flatten(0, 1), best_p.flatten()


def frequency_check(G, classifier, data_attrs, n=2000, seed=0, device="cpu"):
    """The generator's attribute frequencies against the data's, judged by the classifier ->
    (generated, data, relative error per prompt attribute): StyleGAN2's bar is every error <= 0.5."""
    names = classifier.attribute_names
    gen = generated_attribute_frequencies(G, classifier, n=n, seed=seed, device=device)
    data = {name: round(float(f), 4) for name, f in zip(names, data_attrs.float().mean(0))}
    rel = {c: round(abs(gen[c] - data[c]) / max(data[c], 1e-6), 3) for c in PROMPT_ATTRIBUTES.values() if c in names}
    return gen, data, rel
