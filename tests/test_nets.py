"""Classifier, identity net and small CLIP trainers on tiny synthetic data: they learn, and resume exactly."""
import pytest
import torch

from styleclip_utils.models.nets import ConvNetConfig, SmallCLIPConfig
from styleclip_utils.losses.clip_loss import to_clip_input
from styleclip_utils.train.nets import train_classifier, train_clip, train_identity
from styleclip_utils.train.loop import batch_at, read_log

TINY_NET = ConvNetConfig(in_size=16, width=8, out_dim=2)
TINY_CLIP = SmallCLIPConfig(embed_dim=16, image_resolution=16, vision_layers=1, vision_width=64,
                            vision_patch_size=8, context_length=8, transformer_width=32, transformer_heads=2,
                            transformer_layers=1)


def coloured_squares(n=64, seed=0):
    """Two binary attributes: red channel on/off, a bright square on/off."""
    g = torch.Generator().manual_seed(seed)
    attrs = torch.randint(0, 2, (n, 2), generator=g)
    img = torch.full((n, 3, 16, 16), 60, dtype=torch.uint8)
    img[:, 0] = torch.where(attrs[:, :1, None].bool(), 220, 60)
    for i in range(n):
        if attrs[i, 1]:
            img[i, :, 4:12, 4:12] = 250
    return img, attrs


def mean_first_last(log, key, k=5):
    return sum(r[key] for r in log[:k]) / k, sum(r[key] for r in log[-k:]) / k


def test_classifier_learns_and_resumes_exactly(tmp_path):
    img, attrs = coloured_squares()
    m1, _ = train_classifier(img, attrs, ["Red", "Square"], tmp_path / "a", 50, TINY_NET, batch=16, seed=0,
                             progress=False, log_every=1)
    first, last = mean_first_last(read_log(tmp_path / "a"), "bce")
    assert last < 0.5 * first
    assert (m1.predict(img.float() / 127.5 - 1).long() == attrs).float().mean() > 0.9
    # interrupted at step 20 (the cosine schedule is over the 50 steps: the config says 50), then resumed
    train_classifier(img, attrs, ["Red", "Square"], tmp_path / "b", 50, TINY_NET, batch=16, seed=0, progress=False,
                     log_every=1, stop_at=20)
    assert read_log(tmp_path / "b")[-1]["step"] == 20
    m2, _ = train_classifier(img, attrs, ["Red", "Square"], tmp_path / "b", 50, TINY_NET, batch=16, seed=0,
                             progress=False, log_every=1)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)


def test_identity_embeddings_separate_identities(tmp_path):
    img, attrs = coloured_squares(seed=1)
    ids = attrs[:, 0] * 2 + attrs[:, 1]  # 4 "identities"
    model, _ = train_identity(img, ids, tmp_path, 40, ConvNetConfig(in_size=16, width=8, out_dim=8), batch=16,
                              progress=False, log_every=1)
    first, last = mean_first_last(read_log(tmp_path), "arcface")
    assert last < first
    with torch.no_grad():
        emb = model(img.float() / 127.5 - 1)
    assert torch.allclose(emb.norm(dim=1), torch.ones(len(emb)), atol=1e-5)  # L2-normalised
    sim = emb @ emb.t()
    same = ids[:, None] == ids[None, :]
    assert sim[same].mean() > sim[~same].mean() + 0.3


def test_small_clip_learns_to_match_captions(tmp_path):
    import clip
    img, attrs = coloured_squares(n=64, seed=2)
    texts = ["a grey face", "a grey face with a square", "a red face", "a red face with a square"]
    caps = [[texts[2 * a + b]] for a, b in attrs.tolist()]
    model, _ = train_clip(img, caps, tmp_path, 60, TINY_CLIP, batch=32, lr=2e-3, progress=False, log_every=1)
    first, last = mean_first_last(read_log(tmp_path), "contrastive")
    assert last < first
    with torch.no_grad():  # zero-shot: each image's best-matching text is its own caption
        f_img = model.encode_image(to_clip_input(img.float() / 127.5 - 1, 16))
        f_txt = model.encode_text(clip.tokenize(texts, context_length=8))
        pred = (f_img @ f_txt.t()).argmax(1)
    assert (pred == attrs[:, 0] * 2 + attrs[:, 1]).float().mean() >= 0.9
    assert type(model).__module__ == "clip.model"  # the class ViT-B/32 uses


def test_label_aware_captions_teach_an_attribute_the_captions_never_name(tmp_path):
    import clip
    img, attrs = coloured_squares(n=64, seed=3)
    names = ["Red_Hair", "Eyeglasses"]          # SynthFaces columns, so attribute_caption can phrase them
    caps = [["a face"]] * len(img)             # the dataset captions say nothing
    cfg = SmallCLIPConfig(**{**TINY_CLIP.__dict__, "context_length": 16})
    kw = dict(batch=32, lr=2e-3, progress=False, log_every=1, attrs=attrs, attribute_names=names, label_captions=16)
    model, _ = train_clip(img, caps, tmp_path / "a", 60, cfg, **kw)
    with torch.no_grad():
        f_img = model.encode_image(to_clip_input(img.float() / 127.5 - 1, 16))
        f_txt = model.encode_text(clip.tokenize(["a photo of a face with red hair", "a photo of a face with glasses"],
                                                context_length=16))
        score = f_img @ f_txt.t()
    for k in range(2):  # images with the attribute rank above those without
        pos, neg = score[attrs[:, k].bool(), k], score[~attrs[:, k].bool(), k]
        assert (pos[:, None] > neg[None, :]).float().mean() > 0.9
    # the captions are drawn per step, so an interrupted run resumes exactly
    train_clip(img, caps, tmp_path / "b", 60, cfg, stop_at=25, **kw)
    resumed, _ = train_clip(img, caps, tmp_path / "b", 60, cfg, **kw)
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    # more label captions than images: a second pass over the batch captions other attributes
    train_clip(img, caps, tmp_path / "d", 2, cfg, **{**kw, "batch": 8, "label_captions": 20})
    assert [r["label_captions"] for r in read_log(tmp_path / "d")] == [20, 20]
    with pytest.raises(ValueError, match="needs the images' attrs"):
        train_clip(img, caps, tmp_path / "c", 5, cfg, label_captions=4, progress=False)
    # label_columns: only those attributes are named, so only images with one are captioned (4 rounds)
    train_clip(img, caps, tmp_path / "e", 2, cfg, **{**kw, "batch": 8, "label_captions": 20,
                                                     "label_columns": ["Red_Hair"]})
    red = [int(attrs[batch_at(img, 8, step, 0, "cpu")[0], 0].sum()) for step in range(2)]
    assert any(4 * n < 20 for n in red)   # fewer than unrestricted (20, above): the limit did something
    assert [r["label_captions"] for r in read_log(tmp_path / "e")] == [min(20, 4 * n) for n in red]
    with pytest.raises(ValueError, match="label_columns must be attribute names"):
        train_clip(img, caps, tmp_path / "f", 1, cfg, **{**kw, "label_columns": ["Mohawk"]})


def test_neutral_anchored_loss_makes_the_zero_shot_rule_work(tmp_path):
    """neutral > 0: an image is closer to "a photo of a face with red hair" than to "a photo of a face"
    exactly when it has red hair (the rule of quality.clip_zero_shot and of global directions)."""
    from styleclip_utils.metrics import quality
    img, attrs = coloured_squares(n=64, seed=3)
    names = ["Red_Hair", "Eyeglasses"]
    cfg = SmallCLIPConfig(**{**TINY_CLIP.__dict__, "context_length": 16})
    model, _ = train_clip(img, [["a face"]] * len(img), tmp_path, 80, cfg, batch=32, lr=2e-3, progress=False,
                          log_every=1, attrs=attrs, attribute_names=names, label_captions=16, neutral=1.0)
    log = read_log(tmp_path)
    assert "neutral" in log[0] and mean_first_last(log, "neutral")[1] < mean_first_last(log, "neutral")[0]
    prompts = {"red hair": "Red_Hair", "glasses": "Eyeglasses"}
    acc = quality.clip_zero_shot(model, img, attrs, names, prompts=prompts)
    assert min(acc.values()) >= 0.9, acc


def test_small_clip_continues_from_an_exported_model(tmp_path):
    """init= starts from an exported (float16-stored) CLIP: the first step's loss is the trained model's,
    the run's config names the file, and another config's file is refused with a clear error."""
    from styleclip_utils.weights import zoo
    img, attrs = coloured_squares(n=64, seed=2)
    texts = ["a grey face", "a grey face with a square", "a red face", "a red face with a square"]
    caps = [[texts[2 * a + b]] for a, b in attrs.tolist()]
    kw = dict(batch=32, progress=False, log_every=1)
    trained, _ = train_clip(img, caps, tmp_path / "a", 60, TINY_CLIP, lr=2e-3, **kw)
    path = zoo.save_model("clip", trained.state_dict(), {}, root=tmp_path / "w",
                             half=tuple(trained.state_dict()))
    fresh_loss = read_log(tmp_path / "a")[0]["contrastive"]
    on, run = train_clip(img, caps, tmp_path / "b", 1, TINY_CLIP, lr=1e-9, init=path, **kw)
    assert read_log(tmp_path / "b")[0]["contrastive"] < 0.7 * fresh_loss
    assert run.config["init"] == "clip.safetensors"
    for k, v in trained.state_dict().items():   # one step at lr 1e-9: still the given weights (as float16)
        assert torch.allclose(on.state_dict()[k], v.half().float(), atol=1e-5), k
    other = SmallCLIPConfig(**{**TINY_CLIP.__dict__, "embed_dim": 8})
    with pytest.raises(Exception, match="CLIP init .* does not match CLIP"):
        train_clip(img, caps, tmp_path / "c", 1, other, init=path, **kw)


def test_encode_text_by_length_matches_encode_text():
    # captions of very different lengths, so the chunks are cut at different lengths
    import clip
    from styleclip_utils.models.nets import encode_text_by_length, small_clip
    torch.manual_seed(0)
    model = small_clip(SmallCLIPConfig(**{**TINY_CLIP.__dict__, "context_length": 16})).eval()
    texts = ["a face", "a photo of a face with red hair and glasses and a hat", "glasses", "a red face",
             "a close-up photo of a person with freckles", "a", "a photo of a bald face"]
    tokens = clip.tokenize(texts, context_length=16)
    with torch.no_grad():
        want = model.encode_text(tokens)
        for chunks in (1, 3, 7):
            assert torch.allclose(encode_text_by_length(model, tokens, chunks), want, atol=1e-5)


def test_clip_input_upsamples_bf16():
    x = torch.rand(2, 3, 16, 16, dtype=torch.bfloat16) * 2 - 1
    out = to_clip_input(x, 24)
    assert out.shape == (2, 3, 24, 24) and out.dtype == torch.bfloat16


def test_clip_input_normalisation():
    x = torch.zeros(1, 3, 32, 32) - 1  # black in [-1, 1]
    out = to_clip_input(x, 16)
    assert out.shape == (1, 3, 16, 16)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([-0.48145466 / 0.26862954, -0.4578275 / 0.26130258,
                                                         -0.40821073 / 0.27577711]), atol=1e-4)


def test_verification_pairs_and_threshold():
    from styleclip_utils.metrics.quality import best_threshold, verification_pairs
    ids = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    same, diff = verification_pairs(ids, 20, seed=0)
    assert (ids[same[:, 0]] == ids[same[:, 1]]).all() and (same[:, 0] != same[:, 1]).all()
    assert (ids[diff[:, 0]] != ids[diff[:, 1]]).all()
    assert torch.equal(verification_pairs(ids, 20, seed=0)[0], same)
    with pytest.raises(ValueError, match="at least two identities"):
        verification_pairs(torch.tensor([4, 4, 4]), 5)
    assert best_threshold(torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0.1, 0.75, 0.2])) == pytest.approx(0.7)


def test_bf16_training_learns(tmp_path):
    """precision="bf16" (autocast) trains as well as fp32 on the toy task; weights stay fp32."""
    img, attrs = coloured_squares()
    model, _ = train_classifier(img, attrs, ["Red", "Square"], tmp_path, 50, TINY_NET, batch=16, seed=0,
                                precision="bf16", progress=False)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert (model.predict(img.float() / 127.5 - 1).long() == attrs).float().mean() > 0.9


def test_unknown_precision_is_rejected(tmp_path):
    img, attrs = coloured_squares()
    with pytest.raises(ValueError, match="precision must be one of"):
        train_classifier(img, attrs, ["Red", "Square"], tmp_path / "run", 5, TINY_NET, batch=16,
                         precision="fp16", progress=False)
    assert not (tmp_path / "run").exists()  # rejected before any work: no run folder left behind
