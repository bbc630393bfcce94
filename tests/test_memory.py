"""Tests of `PeakMemory`: crafted /proc files and stand-in framework objects
enter through `MemorySources`; the host reader is also checked for real on
this machine (its reset through /proc/self/clear_refs included).

Nothing here imports TensorFlow, JAX or PyTorch.
"""

import types

import pytest

from kerasbench._efficiency.memory import MemoryReading, MemorySources, PeakMemory

MiB = 1 << 20


def proc(tmp_path, vmhwm_kb=2048):
    """A /proc with self/status (VmHWM in kB) and a writable self/clear_refs."""
    root = tmp_path / "proc"
    (root / "self").mkdir(parents=True)
    set_vmhwm(root, vmhwm_kb)
    (root / "self" / "clear_refs").write_text("")
    return root


def set_vmhwm(root, kb):
    (root / "self" / "status").write_text(
        f"Name:\tpython\nVmPeak:\t  999999 kB\nVmHWM:\t{kb:8d} kB\nVmRSS:\t    1000 kB\n")


class FakeAllocator:
    """In-use bytes and the peak since the last reset, as a GPU allocator keeps them."""

    def __init__(self):
        self.in_use = self.peak = 0
        self.resets = 0

    def alloc(self, n):
        self.in_use += n
        self.peak = max(self.peak, self.in_use)

    def free(self, n):
        self.in_use -= n

    def reset(self):
        self.resets += 1
        self.peak = self.in_use


def fake_tf(allocator, gpus=("GPU:0",)):
    def get_memory_info(name):
        assert name == "GPU:0"
        return {"current": allocator.in_use, "peak": allocator.peak}

    def reset_memory_stats(name):
        assert name == "GPU:0"
        allocator.reset()

    experimental = types.SimpleNamespace(get_memory_info=get_memory_info,
                                         reset_memory_stats=reset_memory_stats)
    return types.SimpleNamespace(config=types.SimpleNamespace(
        experimental=experimental, list_logical_devices=lambda kind: list(gpus)))


def fake_torch(allocator, index=1):
    def max_memory_allocated(i):
        assert i == index
        return allocator.peak

    def reset_peak_memory_stats(i):
        assert i == index
        allocator.reset()

    cuda = types.SimpleNamespace(max_memory_allocated=max_memory_allocated,
                                 reset_peak_memory_stats=reset_peak_memory_stats,
                                 is_available=lambda: True)
    return types.SimpleNamespace(cuda=cuda)


def fake_jax(allocator, stats=True):
    class Device:
        platform = "gpu"

        def memory_stats(self):
            return {"bytes_in_use": allocator.in_use,
                    "peak_bytes_in_use": allocator.peak} if stats else None

        def __str__(self):
            return "cuda:0"

    device = Device()
    return types.SimpleNamespace(devices=lambda kind=None: [device])


def sources(tmp_path, **kwargs):
    kwargs.setdefault("proc_root", str(tmp_path / "no-proc"))
    return MemorySources(**kwargs)


# ---------------------------------------------------------------- host, /proc


def test_host_peak_from_vmhwm_reset_through_clear_refs(tmp_path):
    root = proc(tmp_path, vmhwm_kb=9000)
    meter = PeakMemory("tensorflow", "cpu", sources=MemorySources(proc_root=str(root)))
    meter.start()
    assert (root / "self" / "clear_refs").read_text() == "5"
    set_vmhwm(root, 3072)  # what the kernel shows after the reset and the phase
    assert meter.stop() == MemoryReading(3072 * 1024, "host", "proc.VmHWM", None)


def test_host_without_clear_refs_says_the_peak_is_the_process_lifetime_one(tmp_path):
    root = proc(tmp_path, vmhwm_kb=5000)
    (root / "self" / "clear_refs").unlink()
    (root / "self" / "clear_refs").mkdir()  # opening it for writing fails, even as root
    meter = PeakMemory("jax", "cpu", sources=MemorySources(proc_root=str(root)))
    meter.start()
    reading = meter.stop()
    assert reading.peak_bytes == 5000 * 1024 and reading.kind == "host"
    assert reading.note.startswith("/proc/self/clear_refs is not writable (")
    assert "predates the phase" in reading.note

    meter.start()
    set_vmhwm(root, 6000)  # a new peak within the phase: no doubt left
    assert meter.stop() == MemoryReading(6000 * 1024, "host", "proc.VmHWM", None)


def test_host_status_without_vmhwm_is_unknown_with_the_reason(tmp_path):
    root = proc(tmp_path)
    (root / "self" / "status").write_text("Name:\tpython\n")
    meter = PeakMemory("torch", "cpu", sources=MemorySources(proc_root=str(root)))
    meter.start()
    reading = meter.stop()
    assert reading.peak_bytes is None and reading.source == "proc.VmHWM"
    assert "VmHWM is missing from /proc/self/status" in reading.note


def test_host_peak_for_real_resets_between_phases():
    meter = PeakMemory("tensorflow", "cpu")
    meter.start()
    block = bytearray(b"\x01" * (96 * MiB))  # written, so resident
    big = meter.stop()
    del block
    meter.start()
    small = meter.stop()
    assert big.kind == small.kind == "host" and big.note is None and small.note is None
    assert big.peak_bytes >= 96 * MiB
    assert small.peak_bytes < big.peak_bytes - 64 * MiB  # the reset took effect


def test_rusage_elsewhere_in_the_system_units(tmp_path):
    usage = types.SimpleNamespace(ru_maxrss=4000)
    for platform, scale in (("linux", 1024), ("freebsd14", 1024), ("darwin", 1)):
        calls = iter([4000, 4500])
        meter = PeakMemory("tensorflow", "cpu", sources=sources(
            tmp_path, platform=platform,
            getrusage=lambda: types.SimpleNamespace(ru_maxrss=next(calls))))
        meter.start()
        assert meter.stop() == MemoryReading(4500 * scale, "host", "getrusage.ru_maxrss", None)
    meter = PeakMemory("tensorflow", "cpu", sources=sources(tmp_path, getrusage=lambda: usage))
    meter.start()
    reading = meter.stop()
    assert reading.peak_bytes == 4000 * 1024
    assert reading.note.startswith("getrusage cannot reset its peak, and the peak predates")


def test_windows_host_memory_is_unknown(tmp_path):
    meter = PeakMemory("tensorflow", "cpu", sources=sources(tmp_path, platform="win32"))
    meter.start()
    assert meter.stop() == MemoryReading(
        None, "host", None, "kerasbench has no reader of peak host memory on Windows")


# ------------------------------------------------------------------- devices


def test_tensorflow_gpu_peak_is_reset_at_the_start(tmp_path):
    gpu = FakeAllocator()
    gpu.alloc(500)  # a peak before the phase
    gpu.free(400)
    meter = PeakMemory("tensorflow", "gpu:0",
                       sources=sources(tmp_path, import_tensorflow=lambda: fake_tf(gpu)))
    meter.start()
    gpu.alloc(150)
    gpu.free(150)
    assert meter.stop() == MemoryReading(250, "device", "tensorflow.get_memory_info", None)
    assert gpu.resets == 1


def test_nested_phases_each_get_the_peak_of_their_whole_span(tmp_path):
    """Validation inside a training phase resets the shared counter; the
    training phase keeps the peak it had reached before that reset."""
    gpu = FakeAllocator()
    src = sources(tmp_path, import_tensorflow=lambda: fake_tf(gpu))
    train, validation = PeakMemory("tensorflow", "gpu:0", sources=src), \
        PeakMemory("tensorflow", "gpu:0", sources=src)
    train.start()
    gpu.alloc(1000)
    gpu.free(1000)
    validation.start()
    gpu.alloc(300)
    gpu.free(300)
    assert validation.stop().peak_bytes == 300
    gpu.alloc(200)
    assert train.stop().peak_bytes == 1000
    gpu.free(200)


def test_a_phase_in_spans_leaves_out_what_happens_between_them(tmp_path):
    """Validation of two epochs as two spans of one meter: the training peak
    between them (2000) counts for training only."""
    gpu = FakeAllocator()
    src = sources(tmp_path, import_tensorflow=lambda: fake_tf(gpu))
    train, validation = PeakMemory("tensorflow", "gpu:0", sources=src), \
        PeakMemory("tensorflow", "gpu:0", sources=src)
    train.start()
    gpu.alloc(1000)
    gpu.free(1000)
    validation.start()          # epoch 1's validation
    gpu.alloc(300)
    gpu.free(300)
    validation.pause()
    validation.pause()          # paused already: nothing changes
    gpu.alloc(2000)             # epoch 2's training
    gpu.free(2000)
    validation.resume()         # epoch 2's validation: the counter is reset again
    gpu.alloc(400)
    gpu.free(400)
    validation.pause()
    gpu.alloc(50)               # after the last validation, before fit's end
    assert train.stop().peak_bytes == 2000
    assert validation.stop() == MemoryReading(400, "device", "tensorflow.get_memory_info",
                                              None)
    assert gpu.resets == 3


def test_jax_spans_say_when_one_span_may_predate(tmp_path):
    gpu = FakeAllocator()
    meter = PeakMemory("jax", "gpu:0", sources=sources(tmp_path, import_jax=lambda: fake_jax(gpu)))
    meter.start()
    gpu.alloc(500)              # a new peak within span 1
    gpu.free(500)
    meter.pause()
    gpu.alloc(700)              # between the spans
    gpu.free(700)
    meter.resume()
    gpu.alloc(600)              # span 2's peak is 600, hidden under 700
    gpu.free(600)
    reading = meter.stop()
    assert reading.peak_bytes == 700  # an upper bound, said so
    assert reading.note.startswith("JAX cannot reset its peak counter, and the peak predates")
    meter.start()
    gpu.alloc(800)
    gpu.free(800)
    meter.pause()
    meter.resume()
    gpu.alloc(900)
    assert meter.stop() == MemoryReading(900, "device", "jax.memory_stats", None)


def test_a_failure_while_pausing_becomes_a_note(tmp_path):
    gpu = FakeAllocator()
    tf = fake_tf(gpu)
    meter = PeakMemory("tensorflow", "gpu:0",
                       sources=sources(tmp_path, import_tensorflow=lambda: tf))
    meter.start()

    def lost(name):
        raise RuntimeError("device lost")

    tf.config.experimental.get_memory_info = lost
    meter.pause()   # never raises
    meter.resume()  # nothing left to resume
    assert meter.stop() == MemoryReading(
        None, "device", "tensorflow.get_memory_info",
        "reading tensorflow.get_memory_info failed (RuntimeError: device lost)")


def test_torch_gpu_index_and_reset(tmp_path):
    gpu = FakeAllocator()
    gpu.alloc(7000)
    gpu.free(7000)
    meter = PeakMemory("torch", "gpu:1",
                       sources=sources(tmp_path, import_torch=lambda: fake_torch(gpu)))
    meter.start()
    gpu.alloc(64)
    assert meter.stop() == MemoryReading(64, "device", "torch.cuda.max_memory_allocated", None)


def test_jax_peak_cannot_be_reset_and_says_when_it_predates_the_phase(tmp_path):
    gpu = FakeAllocator()
    gpu.alloc(800)
    gpu.free(800)
    meter = PeakMemory("jax", "gpu:0", sources=sources(tmp_path, import_jax=lambda: fake_jax(gpu)))
    meter.start()
    gpu.alloc(100)
    reading = meter.stop()
    assert (reading.peak_bytes, reading.kind, reading.source) == (800, "device",
                                                                  "jax.memory_stats")
    assert reading.note.startswith("JAX cannot reset its peak counter, and the peak predates")
    meter.start()
    gpu.alloc(900)  # 1000 in use: a new peak within the phase
    assert meter.stop() == MemoryReading(1000, "device", "jax.memory_stats", None)


def test_jax_device_without_memory_stats(tmp_path):
    meter = PeakMemory("jax", "gpu:0", sources=sources(
        tmp_path, import_jax=lambda: fake_jax(FakeAllocator(), stats=False)))
    meter.start()
    assert meter.stop() == MemoryReading(None, "device", "jax.memory_stats",
                                         "cuda:0 reports no peak_bytes_in_use")


def test_default_device_follows_the_backend(tmp_path):
    gpu = FakeAllocator()
    with_gpu = sources(tmp_path, import_tensorflow=lambda: fake_tf(gpu))
    meter = PeakMemory("tensorflow", sources=with_gpu)
    meter.start()
    assert meter.stop().kind == "device"
    without = sources(tmp_path, import_tensorflow=lambda: fake_tf(gpu, gpus=()),
                      getrusage=lambda: types.SimpleNamespace(ru_maxrss=1))
    meter = PeakMemory("tensorflow", sources=without)
    meter.start()
    assert meter.stop().kind == "host"


# -------------------------------------------------------------------- faults


def test_framework_failures_become_notes_never_exceptions(tmp_path):
    def missing():
        raise ImportError("No module named 'tensorflow'")

    meter = PeakMemory("tensorflow", "gpu:0", sources=sources(tmp_path, import_tensorflow=missing))
    meter.start()
    reading = meter.stop()
    assert reading.peak_bytes is None
    assert reading.note == ("finding the device failed (ImportError: No module named "
                            "'tensorflow')")

    broken = fake_tf(FakeAllocator())

    def lost(name):
        raise RuntimeError("CUDA_ERROR_ILLEGAL_ADDRESS\nmore lines")

    broken.config.experimental.get_memory_info = lost
    meter = PeakMemory("tensorflow", "gpu:0",
                       sources=sources(tmp_path, import_tensorflow=lambda: broken))
    meter.start()
    assert meter.stop() == MemoryReading(
        None, "device", "tensorflow.get_memory_info",
        "reading tensorflow.get_memory_info failed (RuntimeError: CUDA_ERROR_ILLEGAL_ADDRESS "
        "more lines)")


def test_a_failed_reset_falls_back_to_a_baseline(tmp_path):
    gpu = FakeAllocator()
    gpu.alloc(300)
    tf = fake_tf(gpu)

    def refuse(name):
        raise ValueError("reset_memory_stats is not supported")

    tf.config.experimental.reset_memory_stats = refuse
    meter = PeakMemory("tensorflow", "gpu:0",
                       sources=sources(tmp_path, import_tensorflow=lambda: tf))
    meter.start()
    reading = meter.stop()
    assert reading.peak_bytes == 300
    assert reading.note.startswith("resetting tensorflow.get_memory_info failed (ValueError")
    assert "predates the phase" in reading.note


def test_device_memory_on_other_backends_is_unknown(tmp_path):
    meter = PeakMemory("numpy", "gpu:0", sources=sources(tmp_path))
    meter.start()
    reading = meter.stop()
    assert (reading.peak_bytes, reading.kind) == (None, "device")
    assert "TensorFlow, JAX and PyTorch backends only, not on numpy" in reading.note


def test_stop_without_start():
    assert PeakMemory("tensorflow", "cpu").stop() == MemoryReading(
        None, None, None, "start() was not called")


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "theano"}, "Received: backend='theano'"),
    ({"backend": "jax", "device": "tpu:0"}, """`device` must be None, "cpu" or "gpu:N" """
                                            "(N >= 0). Received: device='tpu:0'"),
    ({"backend": "jax", "device": 0}, "Received: device=0"),
    ({"backend": "jax", "sources": "/proc"}, "Received: sources='/proc'"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=None) as info:
        PeakMemory(**kwargs)
    assert message in str(info.value)
