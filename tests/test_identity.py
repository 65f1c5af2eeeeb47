"""Identity backbones and IDLoss, on random weights (no real files needed).

IR-SE50 is 43.8 M params and slow on CPU, so one random file is made, saved and loaded per module, and the
tests share that model and keep batches small."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from styleclip_utils.losses.identity import IDLoss, arcface_preprocess, facenet_preprocess
from styleclip_utils.models.arcface import Backbone
from official_files import arcface_ir_se50
from styleclip_utils.weights.checkpoints import CheckpointError
from styleclip_utils.weights.official import load_arcface, load_facenet
from styleclip_utils.models.nets import ConvNetConfig, IdentityNet
from styleclip_utils.weights.registry import MissingWeightsError

MANIFEST = Path(__file__).parent / "data" / "arcface_irse50_manifest.json"


@pytest.fixture(scope="module")
def arcface_sd():
    return arcface_ir_se50()


@pytest.fixture(scope="module")
def arcface_file(arcface_sd, tmp_path_factory):
    path = tmp_path_factory.mktemp("arcface") / "model_ir_se50.pth"
    torch.save(arcface_sd, path)  # a bare state dict, like the real file
    return path


@pytest.fixture(scope="module")
def arcface(arcface_file):
    return load_arcface(arcface_file)


def faces(n, size, seed):
    """Smooth random images in [-1, 1] (upsampled noise), so the crop and pooling see structure."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 16, 16, generator=g) * 2 - 1
    return F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)


# -----------------------------------------------------------------------------
# ArcFace: layout and loading

def test_backbone_matches_manifest_key_for_key():
    shapes = json.loads(MANIFEST.read_text())["state_dict_shapes"]
    net = Backbone(num_layers=50, mode="ir_se", drop_ratio=0.4, affine=True)
    sd = net.state_dict()
    assert list(sd) == list(shapes)  # same keys, in the file's order
    assert {k: list(v.shape) for k, v in sd.items()} == shapes
    n_params = sum(p.numel() for p in net.parameters())
    assert 43.7e6 < n_params < 43.9e6


def test_load_arcface_loads_the_file_strictly(arcface, arcface_sd):
    assert not arcface.training
    assert not any(p.requires_grad for p in arcface.parameters())
    loaded = arcface.state_dict()
    for k in ("input_layer.0.weight", "body.21.shortcut_layer.1.running_var", "output_layer.4.bias",
              "body.23.res_layer.5.fc2.weight"):
        assert torch.equal(loaded[k], arcface_sd[k])


def test_arcface_forward_batch_of_one_and_three(arcface):
    x = faces(3, 112, seed=1)
    with torch.no_grad():
        y3 = arcface(x)
        y1 = arcface(x[:1])  # BatchNorm1d in the head: a batch of one must work in eval mode
    assert y3.shape == (3, 512) and y1.shape == (1, 512)
    assert torch.isfinite(y3).all()
    torch.testing.assert_close(y3.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(y1, y3[:1], atol=1e-5, rtol=1e-4)


def test_arcface_file_with_missing_key_and_wrong_shape(arcface_sd, tmp_path):
    sd = dict(arcface_sd)
    del sd["body.5.res_layer.3.weight"]
    sd["output_layer.3.weight"] = torch.zeros(512, 512 * 14 * 14)  # a 224 px backbone's head
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as e:
        load_arcface(path)
    msg = str(e.value)
    assert str(path) in msg and "Backbone" in msg
    assert "missing keys (1): body.5.res_layer.3.weight" in msg
    assert "output_layer.3.weight: file (512, 100352) vs model (512, 25088)" in msg


def test_arcface_file_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(CheckpointError, match="expected a state dict"):
        load_arcface(path)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_arcface(junk)


def test_missing_files_name_the_file(tmp_path):
    with pytest.raises(MissingWeightsError, match="nope.pth"):
        load_arcface(tmp_path / "nope.pth")
    # a registry name with an empty cache and no download: the error says what to get and where to put it
    with pytest.raises(MissingWeightsError, match=r"model_ir_se50\.pth.*put it at"):
        load_arcface("arcface-ir-se50", root=tmp_path, download_missing=False)
    with pytest.raises(FileNotFoundError, match=r"20180402-114759-vggface2\.pt"):
        load_facenet("facenet-vggface2", root=tmp_path, download_missing=False)


# -----------------------------------------------------------------------------
# preprocessing

def pooling_matrix(n_in, n_out):
    """Adaptive average pooling as a matrix, from its definition: output i averages inputs
    floor(i·n_in/n_out) .. ceil((i+1)·n_in/n_out) − 1."""
    P = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        a, b = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        P[i, a:b] = 1 / (b - a)
    return P


def test_arcface_preprocess_is_the_official_crop_and_pool():
    # pixel value = 1000·row + column, so every output is the mean of a known window
    r, c = torch.meshgrid(torch.arange(256.), torch.arange(256.), indexing="ij")
    img = (1000 * r + c).double().expand(1, 3, 256, 256)
    out = arcface_preprocess(img)
    assert out.shape == (1, 3, 112, 112)
    assert out[0, 0, 0, 0] == 1000 * 35.5 + 32.5        # rows 35-36, columns 32-33
    assert out[0, 0, -1, -1] == 1000 * 221.5 + 218.5    # rows 221-222, columns 218-219 (end 223/220 excluded)
    # in full: crop rows 35:223, columns 32:220 (188²), then 188 -> 112 adaptive average pooling
    P = pooling_matrix(188, 112)
    expected = P @ img[0, 0, 35:223, 32:220] @ P.T
    torch.testing.assert_close(out[0, 0], expected)

    # 1024 px (the FFHQ generator): first 4×4 box averages down to 256, as AdaptiveAvgPool2d((256, 256)) does
    big = faces(2, 1024, seed=3).double()
    boxed = big.reshape(2, 3, 256, 4, 256, 4).mean((3, 5))
    torch.testing.assert_close(arcface_preprocess(big), arcface_preprocess(boxed))
    assert arcface_preprocess(faces(1, 64, seed=4)).shape == (1, 3, 112, 112)


def test_facenet_preprocess_numbers():
    from facenet_pytorch import fixed_image_standardization

    img = torch.tensor([-1.0, 0.0, 1.0]).reshape(1, 1, 1, 3).expand(1, 3, 160, 3).contiguous()
    img = F.pad(img, (0, 157), value=0.5)  # 160² with known columns
    out = facenet_preprocess(img)
    torch.testing.assert_close(out[0, 0, 0, :4], torch.tensor([-127.5 / 128, 0.0, 127.5 / 128, 63.75 / 128]))
    # the same as facenet's own standardisation of the 0..255 image
    torch.testing.assert_close(out, fixed_image_standardization((img + 1) / 2 * 255))
    big = faces(1, 256, seed=5)
    assert facenet_preprocess(big).shape == (1, 3, 160, 160)


# -----------------------------------------------------------------------------
# facenet loader

@pytest.fixture(scope="module")
def facenet_file(tmp_path_factory):
    """A file shaped like 20180402-114759-vggface2.pt: facenet's load_weights builds the model with
    `logits = Linear(512, 8631)` and strict-loads the file, so the file is the full state dict of a model
    with that classifier (backbone + logits.weight/bias)."""
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    net = InceptionResnetV1(classify=True, num_classes=8631).eval()
    for m in net.modules():  # move BN stats off their defaults so the file's buffers matter
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.01)
            m.running_var.uniform_(0.9, 1.1)
    # A random net maps every image to nearly the same direction (cos ≈ 1 - 1e-5: all-positive ReLU
    # features). A trained net's last BatchNorm centres the features; calibrate it on a few images so
    # that different images get different embeddings, as they would with the real weights.
    feats = []
    hook = net.last_bn.register_forward_pre_hook(lambda m, args: feats.append(args[0]))
    with torch.no_grad():
        net(facenet_preprocess(faces(3, 160, seed=7)))
    hook.remove()
    net.last_bn.running_mean.copy_(feats[0].mean(0))
    net.last_bn.running_var.copy_(feats[0].var(0) + 1e-6)
    folder = tmp_path_factory.mktemp("torch_home") / "checkpoints"
    folder.mkdir()
    path = folder / "20180402-114759-vggface2.pt"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def facenet(facenet_file):
    return load_facenet(facenet_file)


def test_load_facenet_matches_facenets_own_loader(facenet, facenet_file, monkeypatch):
    from facenet_pytorch import InceptionResnetV1

    ours = facenet
    assert not ours.training and not any(p.requires_grad for p in ours.parameters())
    assert ours.logits.weight.shape == (8631, 512)
    # facenet's own pretrained='vggface2' path, pointed at the same file through its cache (TORCH_HOME),
    # so nothing is downloaded: it must accept the file and give the same embeddings
    monkeypatch.setenv("TORCH_HOME", str(facenet_file.parent.parent))
    theirs = InceptionResnetV1(pretrained="vggface2").eval()
    x = facenet_preprocess(faces(1, 256, seed=6))
    with torch.no_grad():
        y = ours(x)
        torch.testing.assert_close(y, theirs(x))
    assert y.shape == (1, 512)
    torch.testing.assert_close(y.norm(dim=1), torch.ones(1))

    # the "-features" variant without the classifier loads too; a wrong file gets one clear error
    sd = torch.load(facenet_file, weights_only=True)
    features = {k: v for k, v in sd.items() if not k.startswith("logits.")}
    torch.save(features, facenet_file.with_name("features.pt"))
    assert not hasattr(load_facenet(facenet_file.with_name("features.pt")), "logits")
    del features["last_bn.running_var"]
    torch.save(features, facenet_file.with_name("bad.pt"))
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): last_bn.running_var"):
        load_facenet(facenet_file.with_name("bad.pt"))


# -----------------------------------------------------------------------------
# IDLoss

def check_id_loss(loss_fn, size):
    """Batch of two against a one-image reference (broadcast): the same image, then a different one."""
    ref = faces(1, size, seed=10)
    img = torch.cat([ref, faces(1, size, seed=11)]).requires_grad_(True)
    loss = loss_fn(img, ref)
    assert loss.shape == (2,)
    assert abs(loss[0].item()) < 1e-5   # same image: cos = 1
    assert loss[1].item() > 1e-3        # a different image
    loss.sum().backward()
    assert img.grad is not None and img.grad[1].abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss_fn.model.parameters())
    return loss


def test_id_loss_arcface(arcface):
    loss_fn = IDLoss("arcface", model=arcface)
    loss_fn.train()  # the backbone stays in eval mode (BatchNorm1d would fail on a batch of one)
    assert not arcface.training
    check_id_loss(loss_fn, size=256)


def test_id_loss_synthfaces_and_reference():
    torch.manual_seed(0)
    net = IdentityNet(ConvNetConfig(in_size=64, width=8, out_dim=16)).eval()
    with torch.no_grad():  # centre the head's output (see facenet_file): different images, different embeddings
        net.head.bias -= net.head(net.features(faces(8, 64, seed=9)).mean((2, 3))).mean(0)
    loss_fn = IDLoss("synthfaces", model=net)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    loss = check_id_loss(loss_fn, size=64)
    # per-image references, given as images or as embeddings computed once (no graph) give the same loss
    refs = faces(3, 64, seed=12)
    imgs = torch.cat([refs[:2], faces(1, 64, seed=13)])
    emb = loss_fn.reference(refs)
    assert not emb.requires_grad and emb.shape == (3, 16)
    loss = loss_fn(imgs, refs)
    torch.testing.assert_close(loss_fn(imgs, emb), loss)
    assert loss.shape == (3,) and loss[:2].abs().max() < 1e-5 and loss[2] > 1e-3


def test_id_loss_facenet(facenet):
    check_id_loss(IDLoss("facenet", model=facenet), size=256)


def test_id_loss_unknown_backbone():
    with pytest.raises(ValueError, match="unknown identity backbone"):
        IDLoss("vgg", model=torch.nn.Identity())
