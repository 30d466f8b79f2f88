"""The model zoo: the registry's contents, names and aliases, checkpoint + config downloads by name (loopback
HTTP server), digests, the offline and local-error messages, the splifft config conversion, the generated
documentation, and `bs-roformer models`."""

import errno
import hashlib
import importlib.util
import io
import json
from pathlib import Path

import pytest
import torch
import yaml

import references
from bs_roformer import load_model
from bs_roformer.cli import main
from bs_roformer.cli.models import README_MARKERS, markdown_table, readme_summary, with_readme_table
from bs_roformer.inference import registry
from bs_roformer.inference.config import model_from_config, read_config
from helpers import serve, tiny_config

ROOT = Path(__file__).resolve().parents[1]
CLASSIC = ["model_bs_roformer_ep_17_sdr_9.6568", "model_bs_roformer_ep_317_sdr_12.9755", "model_bs_roformer_ep_368_sdr_12.9628",
           "model_mel_band_roformer_ep_3005_sdr_11.4360", "vocals_mel_band_roformer_kj", "mel_band_roformer_karaoke_aufr33_viperx_sdr_10.1956"]


# --- contents ----------------------------------------------------------------------------------------------

def test_registry_holds_the_zoo_with_pinned_digests_and_marked_variants():
    entries = list(registry.REGISTRY.values())
    assert len(entries) >= 130
    assert sum(1 for entry in entries if entry.sha256) >= 100
    assert all(len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0 for entry in entries if entry.sha256)
    variants = {entry.variant for entry in entries}
    assert {"hyperace_v1", "hyperace_v2", "large_inst_v2", "pope", "conformer", "shared_bias", "value_residual", "fno"} <= variants
    for entry in entries:
        assert entry.url.startswith("https://") and entry.stems and entry.architecture in ("bs_roformer", "mel_band_roformer", "bs_conformer")
        assert entry.config_path is not None or entry.config_urls, entry.name
        assert entry.config_path is None or entry.config_path.is_file(), entry.name
    assert all(name in registry.REGISTRY for name in CLASSIC)
    assert registry.REGISTRY["model_bs_roformer_ep_317_sdr_12.9755"].size == 639_331_213


def test_every_name_alias_and_file_name_resolves_to_one_entry():
    seen = {}
    for entry in registry.REGISTRY.values():
        for name in entry.names():
            assert seen.setdefault(name, entry.name) == entry.name, f"{name} names {seen[name]} and {entry.name}"
            assert registered_name(name) == entry.name
    # what audio-separator users type, with or without the extension
    assert registered_name("model_bs_roformer_ep_317_sdr_12.9755.ckpt") == "model_bs_roformer_ep_317_sdr_12.9755"
    assert registered_name("mel_band_roformer_kim_ft_unwa.ckpt") == "mel_roformer-unwa-kim_ft"
    assert registered_name("mel_band_roformer_kim_ft_unwa") == "mel_roformer-unwa-kim_ft"
    assert registered_name("vocals_mel_band_roformer.ckpt") == "vocals_mel_band_roformer_kj"
    assert registered_name("bs_roformer-viperx-1297") == "model_bs_roformer_ep_317_sdr_12.9755"
    assert registered_name("default") == registry.DEFAULT_MODEL
    assert registry.registered("no_such_model.ckpt") is None


def registered_name(name):
    entry = registry.registered(name)
    return entry and entry.name


# --- downloads by name --------------------------------------------------------------------------------------

@pytest.fixture
def tiny_files(tmp_path):
    config = tiny_config(num_stems=2)
    torch.manual_seed(0)
    path = tmp_path / "tiny.ckpt"
    torch.save(model_from_config(read_config(config)).state_dict(), path)
    return path.read_bytes(), yaml.safe_dump(config).encode()


def remote_entry(url, **fields):
    """A registry entry whose config is downloaded next to the checkpoint."""
    fields = dict(name="tiny-remote", url=f"{url}/models/tiny.ckpt", config_urls=(f"{url}/configs/tiny.yaml",), stems=("drums", "bass"), **fields)
    return registry.RegisteredModel(**fields)


def test_checkpoint_and_config_download_by_name_and_load_offline_later(tmp_path, tiny_files, monkeypatch):
    checkpoint, config = tiny_files
    cache = tmp_path / "cache"
    with serve({"/models/tiny.ckpt": checkpoint, "/configs/tiny.yaml": config}) as url:
        monkeypatch.setitem(registry.REGISTRY, "tiny-remote", remote_entry(url, aliases=("tiny_by_alias.ckpt",)))
        loaded = load_model("tiny_by_alias.ckpt", cache=cache, progress=False)
    assert loaded.source == "tiny-remote" and loaded.stems == ["drums", "bass"]
    assert (cache / "tiny.ckpt").read_bytes() == checkpoint and (cache / "tiny-remote.yaml").read_bytes() == config
    assert (cache / "tiny-remote.yaml.sha256").read_text().split()[0] == hashlib.sha256(config).hexdigest()
    assert not list(cache.glob("*.partial"))
    # later loads need no network (the server is gone) and are verified
    assert load_model("tiny-remote", cache=cache, progress=False).stems == ["drums", "bass"]
    (cache / "tiny-remote.yaml").write_bytes(config + b"\n# edited\n")
    with pytest.raises(ValueError, match=r"tiny-remote.yaml is corrupt or was replaced"):
        load_model("tiny-remote", cache=cache, progress=False)


def test_a_downloaded_config_without_a_model_type_takes_the_entrys_architecture(tmp_path, monkeypatch):
    config = {"audio": {"sample_rate": 16000}, "training": {"instruments": ["vocals", "other"], "target_instrument": "vocals"},
              "model": dict(dim=8, depth=1, hidden=8, stft_n_fft=256, stft_hop_length=64, stft_win_length=256, freqs_per_bands="drums")}
    path = tmp_path / "rnn.ckpt"
    torch.save(model_from_config(read_config({**config, "training": {**config["training"], "model_type": "bsrnn"}})).state_dict(), path)
    with serve({"/models/tiny.ckpt": path.read_bytes(), "/configs/tiny.yaml": yaml.safe_dump(config).encode()}) as url:
        monkeypatch.setitem(registry.REGISTRY, "tiny-remote", remote_entry(url, architecture="bsrnn"))
        assert load_model("tiny-remote", cache=tmp_path / "cache", progress=False).model_type == "bsrnn"


def test_a_mirror_is_tried_when_the_url_fails(tmp_path, tiny_files):
    checkpoint, _ = tiny_files
    with serve({"/mirror/tiny.ckpt": checkpoint}) as url:
        entry = registry.RegisteredModel(name="tiny", url=f"{url}/gone/tiny.ckpt", mirrors=(f"{url}/mirror/tiny.ckpt",), config="x.yaml")
        assert registry.fetch(entry, tmp_path, progress=False).read_bytes() == checkpoint


def test_pinned_digest_mismatch_is_refused_and_not_kept(tmp_path, tiny_files, monkeypatch):
    checkpoint, config = tiny_files
    cache = tmp_path / "cache"
    with serve({"/models/tiny.ckpt": checkpoint, "/configs/tiny.yaml": config}) as url:
        monkeypatch.setitem(registry.REGISTRY, "tiny-remote", remote_entry(url, sha256="ab" * 32))
        with pytest.raises(ValueError, match=f"has sha256 {hashlib.sha256(checkpoint).hexdigest()}, expected {'ab' * 32}; it was not kept"):
            load_model("tiny-remote", cache=cache, progress=False)
        assert not (cache / "tiny.ckpt").exists() and not list(cache.glob("*.partial"))
        monkeypatch.setitem(registry.REGISTRY, "tiny-remote", remote_entry(url, sha256=hashlib.sha256(checkpoint).hexdigest()))
        assert load_model("tiny-remote", cache=cache, progress=False).stems == ["drums", "bass"]


def test_offline_message_names_both_urls_and_cache_paths(tmp_path):
    entry = remote_entry("http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(ConnectionError) as error:
        registry.fetch_model(entry, tmp_path / "cache", progress=False)
    message = str(error.value)
    assert "Without network access" in message
    for part in ("http://127.0.0.1:9/models/tiny.ckpt", "http://127.0.0.1:9/configs/tiny.yaml",
                 str(tmp_path / "cache" / "tiny.ckpt"), str(tmp_path / "cache" / "tiny-remote.yaml")):
        assert part in message


def test_a_cache_that_cannot_be_written_is_not_reported_as_offline(tmp_path, tiny_files):
    checkpoint, config = tiny_files
    cache = tmp_path / "file"
    cache.write_text("a file where the cache folder should be")
    with serve({"/models/tiny.ckpt": checkpoint, "/configs/tiny.yaml": config}) as url:
        with pytest.raises(registry.CacheError) as error:
            registry.fetch_model(remote_entry(url), cache, progress=False)
    message = str(error.value)
    assert message.startswith(f"cannot write the download of {url}/models/tiny.ckpt to {cache / 'tiny.ckpt'}: ")
    assert "network" not in message


def test_a_full_disk_is_reported_as_such_with_the_path(tmp_path, tiny_files, monkeypatch):
    checkpoint, _ = tiny_files

    class FullDisk(io.BytesIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(registry, "open", lambda path, mode="r": FullDisk(), raising=False)
    with serve({"/tiny.ckpt": checkpoint}) as url:
        with pytest.raises(registry.CacheError) as error:
            registry.download(f"{url}/tiny.ckpt", tmp_path / "cache" / "tiny.ckpt", progress=False)
    assert str(error.value) == f"cannot write the download of {url}/tiny.ckpt to {tmp_path / 'cache' / 'tiny.ckpt'}: no space left on device"
    assert list((tmp_path / "cache").iterdir()) == []  # nothing left behind


# --- the splifft config conversion -------------------------------------------------------------------------

def build_registry_script():
    spec = importlib.util.spec_from_file_location("build_registry", ROOT / "scripts" / "build_registry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# splifft config id -> our MSST config of the same checkpoint (from MSST's own YAML)
CONVERTED = {
    "bs_roformer-viperx-1297": "model_bs_roformer_ep_317_sdr_12.9755.yaml",
    "bs_roformer-viperx-1296": "model_bs_roformer_ep_368_sdr_12.9628.yaml",
    "bs_roformer-zfturbo-musdb18": "config_bs_roformer_384_8_2_485100.yaml",
    "mel_roformer-kim-vocals": "config_vocals_mel_band_roformer_kj.yaml",
    "mel_roformer-aufr33-karaoke": "config_mel_band_roformer_karaoke.yaml",
}


@pytest.mark.parametrize("config_id", list(CONVERTED))
def test_splifft_configs_convert_to_the_msst_configs_of_the_same_checkpoints(config_id):
    splifft = references.install("splifft", "0.0.9") / "splifft" / "data" / "config" / f"{config_id}.json"
    converted = read_config(build_registry_script().msst_config(json.loads(splifft.read_text())))
    msst = read_config(registry.CONFIG_DIR / CONVERTED[config_id])
    for key in ("dim", "depth"):
        assert converted["model"][key] == msst["model"][key]
    # the same narrow model from both shows every other shape-setting key (bands, mask depth, mlp, stems, heads)
    for config in (converted, msst):
        config["model"].update(dim=8, depth=1)
    ours, theirs = model_from_config(converted), model_from_config(msst)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    for key in ("stft_n_fft", "stft_hop_length", "stft_win_length", "mask_estimator_depth", "num_bands", "mlp_expansion_factor"):
        assert converted["model"].get(key) == msst["model"].get(key, converted["model"].get(key)), key
    assert converted["audio"]["chunk_size"] == msst["audio"]["chunk_size"]


# --- generated documentation -------------------------------------------------------------------------------

def test_readme_and_docs_tables_are_generated_from_the_registry():
    entries = list(registry.REGISTRY.values())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert all(marker in readme for marker in README_MARKERS)
    assert with_readme_table(readme, readme_summary(entries)) == readme, "run python scripts/build_registry.py"
    assert markdown_table(entries) in (ROOT / "docs" / "models.md").read_text(encoding="utf-8"), "run python scripts/build_registry.py"


# --- bs-roformer models ------------------------------------------------------------------------------------

def test_models_list_filter_json_and_info(tmp_path, capsys):
    assert main(["models", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == len(registry.REGISTRY) + 1 and f"{len(registry.REGISTRY)} of {len(registry.REGISTRY)} models" in out.err

    (tmp_path / "MelBandRoformer.ckpt").write_bytes(b"x")  # the Kimberley Jensen checkpoint, as if downloaded
    assert main(["models", "--json", "--filter", "vocals", "--filter", "kimberley", "--cache-dir", str(tmp_path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [entry["name"] for entry in listed] == ["vocals_mel_band_roformer_kj"] and listed[0]["downloaded"] is True

    assert main(["models", "--json", "--filter", "hyperace"]) == 0
    assert {entry["variant"] for entry in json.loads(capsys.readouterr().out)} == {"hyperace_v1", "hyperace_v2"}
    assert main(["models", "--json", "--filter", "mel_band_roformer", "--filter", "dry"]) == 0
    names = [entry["name"] for entry in json.loads(capsys.readouterr().out)]
    assert "mel_roformer-anvuew-dereverb" in names and "bs_roformer-anvuew-dereverb" not in names  # a BS dereverb model

    # audio-separator's spelling
    assert main(["-l", "--list_filter", "hyperace", "--list_format", "json"]) == 0
    assert {entry["variant"] for entry in json.loads(capsys.readouterr().out)} == {"hyperace_v1", "hyperace_v2"}

    assert main(["models", "info", "model_bs_roformer_ep_317_sdr_12.9755.ckpt", "--cache-dir", str(tmp_path)]) == 0
    info = capsys.readouterr().out
    assert "name:         model_bs_roformer_ep_317_sdr_12.9755" in info and "639 MB" in info and "not downloaded" in info
    assert main(["models", "info", "nothing-like-this"]) == 1
    assert "no registered model is called nothing-like-this" in capsys.readouterr().err


def test_models_download_and_download_only(tmp_path, tiny_files, monkeypatch, capsys):
    checkpoint, config = tiny_files
    with serve({"/models/tiny.ckpt": checkpoint, "/configs/tiny.yaml": config}) as url:
        monkeypatch.setitem(registry.REGISTRY, "tiny-remote", remote_entry(url))
        assert main(["models", "download", "tiny-remote", "--cache-dir", str(tmp_path / "a")]) == 0
        assert main(["-m", "tiny-remote", "--download_model_only", "--cache-dir", str(tmp_path / "b")]) == 0
    for folder in ("a", "b"):
        assert (tmp_path / folder / "tiny.ckpt").exists() and (tmp_path / folder / "tiny-remote.yaml").exists()
    assert main(["models", "download", "no-such-model", "--cache-dir", str(tmp_path)]) == 1
    assert "no-such-model: no registered model has this name" in capsys.readouterr().err
