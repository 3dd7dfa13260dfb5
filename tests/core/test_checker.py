"""The check end to end in process: real decoding, real models, real FAISS and SQLite."""

import pytest

from vdup.catalog.local import LocalCatalog
from vdup.checker import DuplicateChecker
from vdup.matching.decide import DecisionConfig


@pytest.fixture
def checker(tmp_path, extractor):
    c = DuplicateChecker(extractor, LocalCatalog(tmp_path / "data"), DecisionConfig())
    yield c
    c.catalog.close()


def test_edited_copies_match_and_a_copy_of_a_copy_names_the_root(checker, videos):
    assert not checker.check(videos["orig"], "orig").record.is_duplicate
    assert not checker.check(videos["orig_b"], "orig_b").record.is_duplicate
    flip = checker.check(videos["flip"], "flip").record
    assert flip.is_duplicate and flip.duplicate_for == "orig"
    trim = checker.check(videos["trim_crop"], "trim").decision
    assert trim.is_duplicate and trim.duplicate_for == "orig"
    assert trim.match_segment_s[0] == pytest.approx(1.0, abs=0.6)  # the copy starts 1 s in
    cc = checker.check(videos["copy_of_flip"], "cc").record
    assert cc.is_duplicate and cc.duplicate_for == "orig" and cc.root_id == "orig"


def test_same_audio_over_new_visuals_is_not_a_duplicate(checker, videos):
    checker.check(videos["orig"], "orig")
    result = checker.check(videos["same_audio"], "same_audio")
    assert not result.record.is_duplicate, result.to_response()
    assert result.record.root_id == "same_audio"


def test_exact_bytes_are_recognised_without_the_models(checker, videos):
    checker.check(videos["orig"], "orig")

    class NoModels:
        def extract(self, data):
            raise AssertionError("the models ran for identical bytes")

    checker.extractor = NoModels()
    result = checker.check(videos["orig"], "reupload")
    assert result.record.is_duplicate and result.record.path == "exact"
    assert result.record.duplicate_for == "orig"


def test_checking_a_known_id_again_adds_nothing(checker, videos):
    first = checker.check(videos["orig"], "orig")
    again = checker.check(videos["flip"], "orig")
    assert again.already_known and again.record == first.record
    assert checker.catalog.stats()["videos"] == 1


def test_a_restart_keeps_the_catalog(tmp_path, extractor, videos):
    data = tmp_path / "data"
    first = DuplicateChecker(extractor, LocalCatalog(data), DecisionConfig())
    first.check(videos["orig"], "orig")
    first.catalog.close()
    second = DuplicateChecker(extractor, LocalCatalog(data), DecisionConfig())
    result = second.check(videos["flip"], "flip")
    assert result.record.is_duplicate and result.record.duplicate_for == "orig"
    second.catalog.close()
