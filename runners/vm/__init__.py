"""The vm runner: a transient libvirt/QEMU domain (see runner.py), its domain XML, boot files,
console protocol, tap and accelerator choice, one module each."""

from runners.vm.runner import VmInstance, VmRunner

__all__ = ["VmInstance", "VmRunner"]
