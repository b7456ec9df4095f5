"""The workbench's downloads: content-named files, pruned by age and count, and the file-route test
the HTTP edge uses (only a generated download inside Gradio's cache folder is served)."""

from __future__ import annotations

import os

import pytest

import app.workbench as wb
from app.feedback import FeedbackStore
from app.workbench import DOWNLOAD_TTL_S, Workbench, is_download

NAME = "figures-0123456789ab.csv"


def _bench(tmp_path) -> Workbench:
    (tmp_path / "dl").mkdir()
    return Workbench({}, (), (), FeedbackStore(tmp_path / "fb.sqlite3"), tmp_path / "dl")


def test_a_download_is_named_by_its_content_and_written_once(tmp_path):
    bench = _bench(tmp_path)
    a, b, c = bench.write("figures.csv", "x,y\n"), bench.write("figures.csv", "x,y\n"), bench.write("figures.csv", "z\n")
    assert a == b != c and is_download(f"/cache/0abc/{os.path.basename(a)}", "/cache")
    assert sorted(os.listdir(bench.files)) == sorted({os.path.basename(a), os.path.basename(c)})


def test_prune_deletes_downloads_past_their_lifetime(tmp_path):
    bench = _bench(tmp_path)
    old, new = bench.write("conversation.md", "old"), bench.write("conversation.md", "new")
    now = os.path.getmtime(new)
    os.utime(old, (now - DOWNLOAD_TTL_S - 1, now - DOWNLOAD_TTL_S - 1))
    bench.prune(now=now, force=True)
    assert os.listdir(bench.files) == [os.path.basename(new)]


def test_prune_keeps_at_most_the_newest_few(tmp_path, monkeypatch):
    monkeypatch.setattr(wb, "MAX_DOWNLOADS", 3)
    bench = _bench(tmp_path)
    paths = [bench.write("figures.csv", f"row {i}\n") for i in range(6)]
    for i, p in enumerate(paths):
        os.utime(p, (1000 + i, 1000 + i))
    bench.prune(now=1010, force=True)
    assert sorted(os.listdir(bench.files)) == sorted(os.path.basename(p) for p in paths[3:])


def test_is_download_accepts_a_generated_file_in_gradios_cache(tmp_path):
    path = tmp_path / "cache" / "5f2e" / NAME
    path.parent.mkdir(parents=True)
    path.write_text("x")
    assert is_download(str(path), str(tmp_path / "cache"))


@pytest.mark.parametrize("path", [
    "{cache}/5f2e/notes.txt",  # not a generated name
    "{cache}/5f2e/figures-0123456789AB.csv",  # not our hash
    "{cache}/5f2e/figures-0123456789ab.csv.exe",
    "{cache}/" + NAME,  # not inside a content folder
    "{cache}/a/b/" + NAME,  # deeper
    "{tmp}/elsewhere/5f2e/" + NAME,  # outside the cache
    "{cache}/5f2e/../5f2e/" + NAME,  # a way out and back
    "5f2e/" + NAME,  # relative
    "http://127.0.0.1/5f2e/" + NAME,
])
def test_is_download_refuses_anything_else(tmp_path, path):
    assert not is_download(path.format(cache=tmp_path / "cache", tmp=tmp_path), str(tmp_path / "cache"))


def test_is_download_refuses_a_link_out_of_the_cache(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    link = tmp_path / "cache" / "5f2e" / NAME
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    assert not is_download(str(link), str(tmp_path / "cache"))
