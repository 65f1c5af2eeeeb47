"""The judges' building blocks: the same-person rule, the broken images, KID, the realism breakage draws,
and the identity traits the renderer's people carry."""
import numpy as np
import pytest
import torch

from styleclip_utils.data import attributes, render
from styleclip_utils.data.attributes import IDENTITY_TRAITS
from styleclip_utils.metrics.judges import (TRAIT_NAMES, break_faces, broken, kid, same_person,
                                            traits_an_edit_may_change)


def test_identity_traits_of_a_person():
    idn = render.sample_identity(np.random.default_rng(3))
    classes, shape = attributes.identity_traits(idn)
    assert len(classes) == len(IDENTITY_TRAITS) and all(0 <= c < len(v) for c, v in zip(classes, IDENTITY_TRAITS.values()))
    assert len(shape) == 4 and all(0 <= x <= 1 for x in shape)
    assert classes[0] == int(idn.male) and IDENTITY_TRAITS["hair"][classes[3]] == idn.hair_color


def test_same_person_rule():
    a = (torch.tensor([[0, 1, 2, 3, 4]] * 3), torch.zeros(3, 4))
    b = (torch.tensor([[0, 1, 2, 3, 4], [0, 1, 3, 3, 4], [1, 1, 2, 3, 4]]), torch.tensor([[0.1, 0, 0, 0]] * 3))
    used = ["sex", "age", "skin", "shape"]
    assert same_person(a, b, used, tolerance=0.2).tolist() == [True, False, False]
    # a dark-skin edit may change the skin; sex still counts
    may = traits_an_edit_may_change(["Dark_Skin", "Dark_Skin", "Dark_Skin"])
    assert same_person(a, b, used, 0.2, may).tolist() == [True, True, False]
    assert same_person(a, b, used, tolerance=0.05).tolist() == [False, False, False]  # the shape moved 0.1
    assert same_person(a, b, ["age"], tolerance=0.0).tolist() == [True, True, True]  # only what is used counts
    assert TRAIT_NAMES == tuple(IDENTITY_TRAITS)


def test_broken_images_are_seeded_and_broken():
    faces = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for kind in ("noise", "blob", "scramble"):
        a, b = broken(faces, kind, seed=1), broken(faces, kind, seed=1)
        assert torch.equal(a, b) and a.shape == faces.shape and a.dtype == torch.uint8
        assert not torch.equal(a, faces)
    blob = broken(torch.zeros(2, 3, 64, 64, dtype=torch.uint8) + 128, "blob", seed=2)
    assert (blob[:, :, 32, 32] != 128).all()  # the face's centre is covered
    assert sorted(broken(faces, "scramble", 1).flatten().tolist()) == sorted(faces.flatten().tolist())  # moved
    with pytest.raises(ValueError, match="kind must be"):
        broken(faces, "smudge")


def test_training_breakage_is_a_function_of_its_generator():
    x = torch.rand(8, 3, 32, 32) * 2 - 1
    a = break_faces(x, torch.Generator().manual_seed(5))
    b = break_faces(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, x) and not (a == x).all(dim=(1, 2, 3)).any()


def test_kid_is_zero_for_one_distribution_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(600, 16, generator=g), torch.randn(600, 16, generator=g)
    same, shifted = kid(a, b, subsets=5, subset_size=200), kid(a, b + 1.0, subsets=5, subset_size=200)
    assert abs(same) < 0.05 and shifted > 10 * max(abs(same), 1e-3)
