"""Registry downloads against a loopback HTTP server: progress, temporary file + rename, checksums, and
the messages users see offline."""

import hashlib
from pathlib import Path

import pytest
import torch
import yaml

from bs_roformer import load_model
from bs_roformer.inference import registry
from bs_roformer.inference.config import model_from_config, read_config
from helpers import serve, tiny_config


@pytest.fixture
def tiny_checkpoint(tmp_path):
    config = tiny_config(num_stems=2)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    torch.manual_seed(0)
    path = tmp_path / "tiny.ckpt"
    torch.save(model_from_config(read_config(config)).state_dict(), path)
    return path.read_bytes(), config_path


def entry(url, config_path, sha256=None):
    return registry.RegisteredModel(name="tiny", url=url, config=str(config_path), description="tiny", sha256=sha256)


def test_download_progress_and_recorded_checksum(tmp_path, tiny_checkpoint, capsys):
    body, config_path = tiny_checkpoint
    cache = tmp_path / "cache"
    with serve({"/tiny.ckpt": body}) as url:
        path = registry.fetch(entry(f"{url}/tiny.ckpt", config_path), cache)
    assert path == cache / "tiny.ckpt" and path.read_bytes() == body
    assert "tiny.ckpt" in capsys.readouterr().err  # the progress bar
    recorded = (cache / "tiny.ckpt.sha256").read_text().split()[0]
    assert recorded == hashlib.sha256(body).hexdigest()
    assert not list(cache.glob("*.partial"))

    # later loads verify against the recorded checksum, without the network
    assert registry.fetch(entry("http://127.0.0.1:9/tiny.ckpt", config_path), cache) == path
    path.write_bytes(body[:-10] + b"0123456789")
    with pytest.raises(ValueError, match=r"corrupt or was replaced.*Delete it"):
        registry.fetch(entry("http://127.0.0.1:9/tiny.ckpt", config_path), cache)


def test_pinned_checksum_mismatch_is_refused(tmp_path, tiny_checkpoint):
    body, config_path = tiny_checkpoint
    with serve({"/tiny.ckpt": body}) as url:
        with pytest.raises(ValueError, match="expected 00000"):
            registry.fetch(entry(f"{url}/tiny.ckpt", config_path, sha256="0" * 64), tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_interrupted_download_leaves_nothing(tmp_path, tiny_checkpoint):
    body, config_path = tiny_checkpoint
    with serve({"/tiny.ckpt": body}, truncate=True) as url:
        with pytest.raises(ConnectionError, match="tiny.ckpt"):
            registry.fetch(entry(f"{url}/tiny.ckpt", config_path), tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_offline_message_names_the_url_and_where_to_put_the_file(tmp_path, tiny_checkpoint):
    _, config_path = tiny_checkpoint
    url = "http://127.0.0.1:9/models/tiny.ckpt"  # the discard port: nothing listens
    with pytest.raises(ConnectionError) as error:
        registry.fetch(entry(url, config_path), tmp_path / "cache")
    assert url in str(error.value) and str(tmp_path / "cache" / "tiny.ckpt") in str(error.value)


def test_load_by_name_through_the_cache(tmp_path, tiny_checkpoint, monkeypatch):
    body, config_path = tiny_checkpoint
    monkeypatch.setenv("BS_ROFORMER_CACHE", str(tmp_path / "env-cache"))
    with serve({"/tiny.ckpt": body}) as url:
        monkeypatch.setitem(registry.REGISTRY, "tiny", entry(f"{url}/tiny.ckpt", config_path))
        loaded = load_model("tiny", progress=False)
    assert loaded.source == "tiny" and loaded.stems == ["drums", "bass"]
    assert (tmp_path / "env-cache" / "tiny.ckpt").exists()
    assert registry.cache_dir() == Path(tmp_path / "env-cache")
    assert registry.cache_dir(tmp_path / "flag") == tmp_path / "flag"
