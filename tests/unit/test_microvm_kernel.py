"""The microvm kernel's build inputs, checked without building (the build itself runs for real in the
integration tests' prepared cache)."""

import pytest

from bench.images import kernel as kernels
from bench.errors import UsageError


def test_an_option_that_did_not_take_is_named():
    fragment = "# comment\nCONFIG_PVH=y\nCONFIG_NR_CPUS=8\nCONFIG_VIRTIO_MMIO=y\n"
    config = "CONFIG_PVH=y\nCONFIG_NR_CPUS=64\n# CONFIG_VIRTIO_MMIO is not set\n"
    assert kernels.not_taken(fragment, config) == ["CONFIG_NR_CPUS=8", "CONFIG_VIRTIO_MMIO=y"]
    assert kernels.not_taken(fragment, fragment) == []


def test_the_shipped_config_is_commented_and_builds_no_modules():
    text = kernels.MICROVM_CONFIG.read_text()
    assert "CONFIG_MODULES=y" not in text and "CONFIG_ACPI=y" not in text
    assert {"CONFIG_PVH=y", "CONFIG_VIRTIO_MMIO=y", "CONFIG_VIRTIO_BLK=y", "CONFIG_SERIAL_8250_CONSOLE=y"} <= set(text.split())
    assert sum(line.startswith("#") for line in text.splitlines()) >= 10


def test_the_key_follows_the_config_and_the_source(tmp_path):
    source, config = tmp_path / "linux-source-6.1.tar.xz", tmp_path / "microvm.config"
    source.write_bytes(b"x" * 10)
    config.write_text("CONFIG_PVH=y\n")
    first = kernels.microvm_key(source, config)
    assert kernels.microvm_key(source, config) == first
    config.write_text("CONFIG_PVH=y\nCONFIG_SMP=y\n")
    second = kernels.microvm_key(source, config)
    source.write_bytes(b"x" * 11)  # a new package version
    assert len({first, second, kernels.microvm_key(source, config)}) == 3


def test_no_source_is_one_line_saying_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(kernels, "MICROVM_SOURCE", tmp_path / "absent.tar.xz")
    with pytest.raises(UsageError, match="apt-get install linux-source-6.1"):
        kernels.microvm(tmp_path)


def test_without_the_source_the_runner_says_what_to_install(tmp_path, monkeypatch):
    from runners.microvm import MicrovmRunner

    monkeypatch.setattr(kernels, "MICROVM_SOURCE", tmp_path / "absent.tar.xz")
    monkeypatch.setattr(kernels, "LIBELF_HEADER", tmp_path / "absent.h")
    ok, why = MicrovmRunner().available()
    assert not ok and "linux-source-6.1" in why and "libelf-dev" in why
