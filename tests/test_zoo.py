"""Weights registry, resolution and download (against a local HTTP server), and the mmpose key layout."""
from __future__ import annotations

import hashlib
import http.server
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

import higherhrnet
from conftest import EXPERIMENTS, REPO
from higherhrnet import zoo
from higherhrnet.models.registry import input_size, model_entry
from higherhrnet.zoo import WeightsError, resolve_weights

PAYLOAD = bytes(range(256)) * 1000  # 256 kB, several read chunks once _CHUNK is made small
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}
    hits: dict = {}

    def do_GET(self):
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path not in self.routes:
            self.send_error(404)
            return
        body, mode = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "truncate":
            self.wfile.write(body[: len(body) // 2])
        elif mode == "stall":
            self.wfile.write(body[:1000])
            self.wfile.flush()
            time.sleep(1.0)
        else:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A local HTTP server: `serve(path, body, mode)` adds a route and returns its URL; `.hits` counts GETs."""
    handler = type("Handler", (_Handler,), {"routes": {}, "hits": {}})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    class Server:
        hits = handler.hits

        @staticmethod
        def serve(path, body=PAYLOAD, mode="ok"):
            handler.routes[path] = (body, mode)
            return f"http://127.0.0.1:{httpd.server_address[1]}{path}"

    yield Server
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("HIGHERHRNET_CACHE", str(folder))
    monkeypatch.setattr(zoo, "_CHUNK", 16 * 1024)
    return folder


def _files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ---------------------------------------------------------------- downloads

def test_url_download_checks_hash_in_name(server, cache):
    url = server.serve(f"/w/model-{PAYLOAD_SHA[:8]}_20200101.pth")
    path = resolve_weights(url, progress=False)
    assert path == str(cache / f"model-{PAYLOAD_SHA[:8]}_20200101.pth")
    assert open(path, "rb").read() == PAYLOAD
    assert _files(cache) == [os.path.basename(path)]


def test_wrong_hash_leaves_nothing(server, cache):
    url = server.serve("/w/model-0badc0de_20200101.pth")
    with pytest.raises(WeightsError) as info:
        resolve_weights(url, progress=False)
    message = str(info.value)
    assert url in message and "0badc0de" in message and PAYLOAD_SHA in message
    assert _files(cache) == []


def test_connection_closed_early_leaves_nothing(server, cache):
    url = server.serve("/w/half.pth", mode="truncate")
    with pytest.raises(WeightsError, match="cut off|failed"):
        resolve_weights(url, progress=False)
    assert _files(cache) == []


def test_timeout_leaves_nothing(server, cache, monkeypatch):
    monkeypatch.setattr(zoo, "_TIMEOUT_S", 0.2)
    url = server.serve("/w/slow.pth", mode="stall")
    with pytest.raises(WeightsError, match="failed after"):
        resolve_weights(url, progress=False)
    assert _files(cache) == []


def test_keyboard_interrupt_removes_temp_file(server, cache, monkeypatch):
    class InterruptingBar:
        def __init__(self, *args, **kwargs):
            self.calls = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            self.calls += 1
            if self.calls == 2:  # after a first chunk is on disk
                raise KeyboardInterrupt

    monkeypatch.setattr(zoo, "tqdm", InterruptingBar)
    url = server.serve("/w/big.pth")
    with pytest.raises(KeyboardInterrupt):
        resolve_weights(url)
    assert _files(cache) == []


def test_http_error_is_reported(server, cache):
    url = server.serve("/w/present.pth").replace("present", "absent")
    with pytest.raises(WeightsError, match="HTTP 404") as info:
        resolve_weights(url, progress=False)
    assert f"save the file from {url} as {cache / 'absent.pth'}" in str(info.value)


def test_cached_file_is_not_downloaded_again(server, cache):
    url = server.serve(f"/w/model-{PAYLOAD_SHA[:8]}_20200101.pth")
    first = resolve_weights(url, progress=False)
    second = resolve_weights(url, progress=False)
    assert first == second
    assert server.hits[f"/w/model-{PAYLOAD_SHA[:8]}_20200101.pth"] == 1


def test_cached_file_with_wrong_hash_is_downloaded_again(server, cache, caplog):
    name = f"model-{PAYLOAD_SHA[:8]}_20200101.pth"
    url = server.serve(f"/w/{name}")
    cache.mkdir()
    (cache / name).write_bytes(b"damaged")
    with caplog.at_level("WARNING", logger="higherhrnet.zoo"):
        path = resolve_weights(url, progress=False)
    assert open(path, "rb").read() == PAYLOAD
    assert server.hits[f"/w/{name}"] == 1
    assert "downloading it again" in caplog.text


def test_registered_name_downloads_from_its_url(server, cache, monkeypatch):
    url = server.serve("/mm/weights.pth")
    entry = replace(zoo.REGISTRY["mmpose_higherhrnet_w32_512"], url=url, sha256=PAYLOAD_SHA)
    monkeypatch.setitem(zoo.REGISTRY, entry.name, entry)
    path = resolve_weights(entry.name, progress=False)
    assert path == str(cache / "weights.pth") == zoo.cache_path(entry)
    assert open(path, "rb").read() == PAYLOAD
    resolve_weights(entry.name, progress=False)
    assert server.hits["/mm/weights.pth"] == 1


def test_registered_name_with_wrong_hash(server, cache, monkeypatch):
    url = server.serve("/mm/weights.pth")
    entry = replace(zoo.REGISTRY["mmpose_higherhrnet_w32_512"], url=url, sha256="12345678")
    monkeypatch.setitem(zoo.REGISTRY, entry.name, entry)
    with pytest.raises(WeightsError, match="expected 12345678"):
        resolve_weights(entry.name, progress=False)
    assert _files(cache) == []


def test_failed_download_of_a_registered_name_says_where_to_save_it(server, cache, monkeypatch):
    url = server.serve("/mm/present.pth").replace("present", "absent")
    entry = replace(zoo.REGISTRY["mmpose_higherhrnet_w32_512"], url=url)
    monkeypatch.setitem(zoo.REGISTRY, entry.name, entry)
    with pytest.raises(WeightsError) as info:
        resolve_weights(entry.name, progress=False)
    message = str(info.value)
    assert "HTTP 404" in message and zoo.cache_path(entry) in message and "\n" not in message
    # Saved there by hand, it is used (and checked) without a download.
    Path(zoo.cache_path(entry)).parent.mkdir(parents=True, exist_ok=True)
    Path(zoo.cache_path(entry)).write_bytes(PAYLOAD)
    monkeypatch.setitem(zoo.REGISTRY, entry.name, replace(entry, sha256=PAYLOAD_SHA[:8]))
    assert resolve_weights(entry.name, progress=False) == zoo.cache_path(entry)
    # A file there that is not the registered one is not used (a new download is tried, and fails here).
    monkeypatch.setitem(zoo.REGISTRY, entry.name, replace(entry, sha256="12345678"))
    with pytest.raises(WeightsError, match="HTTP 404"):
        resolve_weights(entry.name, progress=False)


def test_a_local_file_named_as_a_registered_download_is_checked(tmp_path, monkeypatch):
    entry = zoo.REGISTRY["mmpose_higherhrnet_w32_512"]
    path = tmp_path / os.path.basename(entry.url)
    path.write_bytes(b"an html error page saved under the weights' name")
    with pytest.raises(WeightsError, match=f"does not match weights '{entry.name}'.*expected {entry.sha256}"):
        resolve_weights(str(path))
    monkeypatch.setitem(zoo.REGISTRY, entry.name, replace(entry, sha256=hashlib.sha256(path.read_bytes()).hexdigest()))
    assert resolve_weights(str(path)) == str(path)


# ---------------------------------------------------------------- names, paths, cache folder

def test_page_only_entry_names_cache_path_then_resolves(cache):
    entry = zoo.REGISTRY["higherhrnet_w32_512"]
    expected = cache / "higherhrnet_w32_512" / "pose_higher_hrnet_w32_512.pth"
    with pytest.raises(WeightsError) as info:
        resolve_weights("higherhrnet_w32_512")
    assert str(expected) in str(info.value) and entry.page in str(info.value)
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"weights")
    assert resolve_weights("higherhrnet_w32_512") == str(expected)


def test_page_only_entry_with_hash_refuses_other_file(cache, monkeypatch):
    entry = replace(zoo.REGISTRY["higherhrnet_w32_512"], sha256=PAYLOAD_SHA[:8])
    monkeypatch.setitem(zoo.REGISTRY, entry.name, entry)
    path = cache / entry.name / entry.filename
    path.parent.mkdir(parents=True)
    path.write_bytes(b"something else")
    with pytest.raises(WeightsError, match="does not match"):
        resolve_weights(entry.name)
    path.write_bytes(PAYLOAD)
    assert resolve_weights(entry.name) == str(path)


def test_unknown_name_lists_known_and_suggests():
    with pytest.raises(WeightsError) as info:
        resolve_weights("higherhrnet_w32_521")
    message = str(info.value)
    assert "Did you mean higherhrnet_w32_512" in message
    assert all(name in message for name in zoo.REGISTRY)


def test_local_paths(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    assert resolve_weights(str(weights)) == str(weights)
    with pytest.raises(WeightsError, match="not found: .*missing.pth"):
        resolve_weights(str(tmp_path / "missing.pth"))
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights("models/pose_higher_hrnet_w32_512.pth")
    with pytest.raises(WeightsError, match="folder"):
        resolve_weights(str(tmp_path))
    with pytest.raises(WeightsError, match="only http"):
        resolve_weights("ftp://example.org/w.pth")


def test_cache_folder_from_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("HIGHERHRNET_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert zoo.cache_dir() == str(tmp_path / "xdg" / "higherhrnet")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert zoo.cache_dir() == str(tmp_path / "home" / ".cache" / "higherhrnet")
    monkeypatch.setenv("HIGHERHRNET_CACHE", str(tmp_path / "mine"))
    assert zoo.cache_dir() == str(tmp_path / "mine")
    assert zoo.cache_path(zoo.REGISTRY["mmpose_higherhrnet_w32_640"]) == \
        str(tmp_path / "mine" / "higher_hrnet32_coco_640x640-a22fe938_20200712.pth")


def test_registry_entries():
    layouts = {"official", "official_fp16", "mmpose", "swahr", "higherhrnet", "bearpaw"}
    for entry in zoo.REGISTRY.values():
        assert entry.layout in layouts
        assert [entry.url, entry.page, entry.packaged].count(None) == 2, entry.name
        assert entry.publisher, entry.name
        if entry.url:
            # publish_model names the file <stem>-<sha256[:8]>_<date>.pth
            assert zoo._hash_in_filename(os.path.basename(entry.url)) == entry.sha256
        # Every config ships inside the package and loads; the name says the input size (a top-down network's
        # as height x width, as its publishers write it).
        cfg = higherhrnet.load_cfg(zoo.config_path(entry))
        width, height = input_size(cfg)
        size = f"_{height}x{width}" if model_entry(cfg.MODEL.NAME).top_down else f"_{width}"
        assert size in entry.name, entry.name
        assert zoo.config_path(entry) == str((EXPERIMENTS.parent / entry.config).resolve())


# ---------------------------------------------------------------- package data, the bundled and the default model

def test_configs_and_the_bundled_model_are_package_data():
    package = Path(higherhrnet.__file__).parent
    entry = zoo.REGISTRY[zoo.BUNDLED_MODEL]
    path = resolve_weights(zoo.BUNDLED_MODEL)
    assert path == str(package / "assets" / "w16_256_tiny.pth") == zoo.package_file(entry.packaged)
    assert zoo.config_path(entry) == str(package / "experiments" / "synthetic" / "w16_256_tiny.yaml")
    # The checkout's old paths are links to the package's files.
    assert (REPO / "models/w16_256_tiny.pth").resolve() == Path(path).resolve()
    assert (REPO / "experiments").resolve() == (package / "experiments").resolve()
    assert zoo.weights_status(entry) == "bundled"
    with pytest.raises(ValueError, match="shipped inside the package"):
        zoo.cache_path(entry)
    with pytest.raises(WeightsError, match="missing from this installation"):
        zoo.package_file("experiments/coco/nothing.yaml")


def test_the_bundled_model_is_checked_against_its_hash(monkeypatch):
    entry = replace(zoo.REGISTRY[zoo.BUNDLED_MODEL], sha256="0123abcd")
    monkeypatch.setitem(zoo.REGISTRY, entry.name, entry)
    with pytest.raises(WeightsError, match="does not match weights 'synthetic_w16_256'.*expected 0123abcd"):
        resolve_weights(entry.name)


def test_a_file_is_recognised_by_its_hash(tmp_path, monkeypatch):
    assert zoo.entry_of_file(REPO / "models/w16_256_tiny.pth").name == zoo.BUNDLED_MODEL
    other = tmp_path / "other.pth"
    other.write_bytes(PAYLOAD)
    assert zoo.entry_of_file(other) is None
    entry = replace(zoo.REGISTRY["mmpose_higherhrnet_w32_512"], sha256=PAYLOAD_SHA[:8])
    monkeypatch.setitem(zoo.REGISTRY, entry.name, entry)
    assert zoo.entry_of_file(other) == entry


def test_the_default_model_is_downloadable_coco_weights():
    entry = zoo.REGISTRY[zoo.DEFAULT_MODEL]
    assert entry.url and entry.sha256 and entry.ap_split == "COCO val2017"
    assert higherhrnet.load_cfg(zoo.config_path(entry)).DATASET.DATASET == "coco_kpt"


def test_default_weights_when_they_can_be_had(server, cache, monkeypatch):
    url = server.serve("/mm/default.pth")
    entry = replace(zoo.REGISTRY[zoo.DEFAULT_MODEL], url=url, sha256=PAYLOAD_SHA[:8])
    monkeypatch.setitem(zoo.REGISTRY, entry.name, entry)
    assert zoo.weights_status(entry) == "download"
    assert zoo.resolve_default(progress=False) == (zoo.DEFAULT_MODEL, str(cache / "default.pth"), None)
    assert zoo.weights_status(entry) == "cached"


def test_default_weights_offline_fall_back_to_the_bundled_model_with_one_line(server, cache, monkeypatch):
    url = server.serve("/mm/present.pth").replace("present", "absent")
    entry = replace(zoo.REGISTRY[zoo.DEFAULT_MODEL], url=url)
    monkeypatch.setitem(zoo.REGISTRY, entry.name, entry)
    name, path, note = zoo.resolve_default(progress=False)
    assert (name, path) == (zoo.BUNDLED_MODEL, resolve_weights(zoo.BUNDLED_MODEL))
    assert "\n" not in note and "bundled demo model synthetic_w16_256" in note and "HTTP 404" in note
    assert str(cache / "absent.pth") in note        # where to save the COCO weights by hand
    assert _files(cache) == []
